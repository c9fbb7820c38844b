"""Bulk work steps aside while other requests are in flight (explorer/core/busy.py)."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import async_to_sync

from explorer.core import busy


def test_a_bulk_stream_waits_for_a_request_in_flight_and_not_for_itself():
    seen = {}

    async def page(scope, receive, send):
        await asyncio.sleep(0.2)

    async def export(scope, receive, send):
        with busy.bulk():
            await asyncio.sleep(0.01)  # the page is in flight now
            started = time.monotonic()
            await busy.step_aside(at_most_s=5)
            seen["waited"] = time.monotonic() - started
            started = time.monotonic()
            await busy.step_aside(at_most_s=5)  # alone: at once
            seen["alone"] = time.monotonic() - started

    async def scenario():
        await asyncio.gather(
            busy.CountRequests(export)({"type": "http"}, None, None),
            busy.CountRequests(page)({"type": "http"}, None, None),
        )

    async_to_sync(scenario)()
    assert 0.1 < seen["waited"] < 1.0
    assert seen["alone"] < 0.05
    assert not busy.others_waiting()


def test_it_steps_aside_for_a_bounded_time():
    async def long_request(scope, receive, send):
        started = time.monotonic()
        with busy.bulk():
            pass
        await busy.step_aside(at_most_s=0.1)  # itself in flight, not bulk: waits it out
        return time.monotonic() - started

    async def scenario():
        return await busy.CountRequests(long_request)({"type": "http"}, None, None)

    started = time.monotonic()
    async_to_sync(scenario)()
    assert 0.09 < time.monotonic() - started < 1.0
