"""The cache's Redis client is shared by every request of a process (core/redis_clients.py)."""

from __future__ import annotations

import asyncio

import redis
from asgiref.sync import sync_to_async


def _connections_received(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return client.info("stats")["total_connections_received"]


def test_requests_in_their_own_contexts_share_one_cache_connection(redis_url):
    from django.core.cache import caches

    async def request(i: int) -> None:
        # Under ASGI each request runs in a context of its own, and Django keeps a cache
        # object per context: what the page reads must not open a connection each time.
        await sync_to_async(caches["default"].get)(f"probe:{i}")

    async def many() -> None:
        for i in range(30):
            await asyncio.create_task(request(i))

    asyncio.run(many())  # the client exists before counting
    before = _connections_received(redis_url)
    asyncio.run(many())
    assert _connections_received(redis_url) - before <= 2  # this count's own connection, one more
