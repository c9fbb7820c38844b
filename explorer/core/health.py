"""Selectors for /healthz: is the database up, is Redis up, which queues have a consumer.

Required queues (settings.HEALTHZ_REQUIRED_QUEUES, shell patterns, default `index` and
`live.*`): batch indexing must have a consumer, and at least one live model queue must, or
no steering works. `explain` is optional (explanations are queued until a worker appears).
"""

from __future__ import annotations

import fnmatch
import threading
import time

from django.conf import settings
from django.db import connection

from explorer.core import tasks

_inspect_lock = threading.Lock()
_inspect_cache: tuple[float, dict[str, list[str]] | None] | None = None


# A probe gives up on a database that does not answer within this many seconds.
DATABASE_PROBE_TIMEOUT_S = 2


def database_status() -> str:
    """ "ok" when `SELECT 1` succeeds on a connection of its own to the default database, else
    "error". Its own: a pooled connection would wait for the pool's timeout, and a request's
    connection may be mid-transaction."""
    import psycopg

    params = {**connection.get_connection_params(), "connect_timeout": DATABASE_PROBE_TIMEOUT_S}
    params.pop("cursor_factory", None)
    try:
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "down" to a health probe
        return "error"
    return "ok"


def redis_status() -> str:
    """ "ok" when Redis answers PING within a second, else "error"."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception:  # noqa: BLE001
        return "error"
    return "ok"


def _inspect_queues() -> dict[str, list[str]] | None:
    try:
        replies = tasks.client.control.inspect(
            timeout=settings.HEALTHZ_INSPECT_TIMEOUT
        ).active_queues()
    except Exception:  # noqa: BLE001 - broker down: no answer
        return None
    queues: dict[str, list[str]] = {}
    for worker, worker_queues in (replies or {}).items():
        for queue in worker_queues:
            queues.setdefault(queue["name"], []).append(worker)
    return {name: sorted(workers) for name, workers in sorted(queues.items())}


def worker_queues() -> dict[str, list[str]] | None:
    """{queue: [worker names]} from a Celery broadcast; None when the broker is unreachable.

    Cached for HEALTHZ_CACHE_SECONDS per process: a broadcast waits the whole inspect timeout
    (we cannot know how many workers will answer), and probes may hit us every second.
    """
    global _inspect_cache
    with _inspect_lock:
        now = time.monotonic()
        if _inspect_cache is not None and now - _inspect_cache[0] < settings.HEALTHZ_CACHE_SECONDS:
            return _inspect_cache[1]
        answer = _inspect_queues()
        _inspect_cache = (time.monotonic(), answer)
        return answer


def missing_queues(queues: dict[str, list[str]]) -> list[str]:
    """The required patterns no consumed queue matches."""
    return [
        pattern
        for pattern in settings.HEALTHZ_REQUIRED_QUEUES
        if not any(
            fnmatch.fnmatchcase(name, pattern) and workers for name, workers in queues.items()
        )
    ]


def health_report() -> tuple[dict, bool]:
    """The /healthz body and whether everything required is up."""
    database = database_status()
    redis_ok = redis_status()
    queues = worker_queues() if redis_ok == "ok" else None
    missing = missing_queues(queues or {})
    healthy = database == "ok" and redis_ok == "ok" and not missing
    body = {
        "status": "ok" if healthy else "error",
        "database": database,
        "redis": redis_ok,
        "queues": queues or {},
        "missing_queues": missing,
    }
    return body, healthy
