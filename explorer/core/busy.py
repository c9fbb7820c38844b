"""Whether this web process is serving someone, so bulk work can step aside.

An export formats rows on the event loop of the process that serves pages; `CountRequests`
counts the HTTP requests in flight, bulk streams say they are one (`bulk()`), and between two
slices of work a bulk stream waits (`step_aside`) while any other request is in flight, a
bounded time, so a page beside an export waits for one slice at most and the export still
moves while long requests (a streamed steering run) are open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_serving = 0  # HTTP requests in flight in this process (event-loop state: no lock needed)
_bulk = 0  # of which bulk streams
POLL_S = 0.005


class CountRequests:
    """ASGI middleware counting this process's HTTP requests in flight."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        global _serving
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _serving += 1
        try:
            await self.app(scope, receive, send)
        finally:
            _serving -= 1


@contextmanager
def bulk() -> Iterator[None]:
    """Mark the current request as bulk work while the block runs (it does not wait for
    itself)."""
    global _bulk
    _bulk += 1
    try:
        yield
    finally:
        _bulk -= 1


def others_waiting() -> bool:
    """Whether a request that is not bulk work is in flight."""
    return _serving > _bulk


async def step_aside(*, at_most_s: float) -> None:
    """Wait while other requests are in flight, at most `at_most_s` seconds."""
    deadline = time.monotonic() + at_most_s
    while others_waiting() and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
