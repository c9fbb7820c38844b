"""Health tasks: a `ping` that proves a worker consumes a queue and can reply."""

from __future__ import annotations

import os

from workers.celery import app, time_limits


@app.task(name="workers.health.ping", **time_limits("live"))
def ping(payload: str = "") -> dict[str, str | int]:
    """Echo `payload` with the worker's pid (a round trip through the real broker)."""
    return {"pong": payload, "pid": os.getpid()}
