"""The web process's Redis connection pools: bounded, and waiting for a free connection rather
than failing.

redis-py's default pool raises MaxConnectionsError past 100 connections, and a pool per
websocket opened a connection per socket. Instead each event loop (a uvicorn process has one)
shares one client, `async_client()`, on a BlockingConnectionPool of REDIS_MAX_CONNECTIONS: the
steering hub, every steering socket and `POST /api/v1/steer` use it. A caller past the bound
waits up to REDIS_POOL_TIMEOUT_S for a connection and then gets redis's ConnectionError, which
is an outage to explorer/core/outages.py (a 503 or an error frame), never a traceback storm.
The channel layer (`ChannelLayer`) and the cache (settings.CACHES) get pools of the same kind
and bound.
"""

from __future__ import annotations

import asyncio
import weakref

from channels_redis.core import RedisChannelLayer
from django.conf import settings

# What these connections are called in Redis's CLIENT LIST (each sets it once, on connect).
CLIENT_NAME = "explorer-web"

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pool_options() -> dict:
    """Keyword arguments of every asyncio BlockingConnectionPool of this process: the bound and
    wait from the settings, and one retry on a new connection, so a pooled connection that died
    with a Redis restart fails no command once Redis is back (the pool's own check before
    reuse is skipped in redis-py 8)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return {
        "max_connections": settings.REDIS_MAX_CONNECTIONS,
        "timeout": settings.REDIS_POOL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1),
        "client_name": CLIENT_NAME,
    }


def async_client():
    """The running event loop's shared `redis.asyncio.Redis` (created on first use). Never
    close it: it lives as long as the loop."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(settings.REDIS_URL, **pool_options())
        client = _clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


class ChannelLayer(RedisChannelLayer):
    """channels_redis's layer on a bounded, waiting pool per event loop (its own
    `create_pool` makes a pool that raises past 100 connections)."""

    def create_pool(self, index: int):
        import redis.asyncio

        host = dict(self.hosts[index])
        address = host.pop("address")
        return redis.asyncio.BlockingConnectionPool.from_url(address, **{**pool_options(), **host})
