"""The web process's Redis connection pools: bounded, and waiting for a free connection rather
than failing.

redis-py's default pool raises MaxConnectionsError past 100 connections, and a pool per
websocket opened a connection per socket. Instead each event loop (a uvicorn process has one)
shares one client, `async_client()`, on a BlockingConnectionPool of REDIS_MAX_CONNECTIONS: the
steering hub, every steering socket and `POST /api/v1/steer` use it. A caller past the bound
waits up to REDIS_POOL_TIMEOUT_S for a connection and then gets redis's ConnectionError, which
is an outage to explorer/core/outages.py (a 503 or an error frame), never a traceback storm.
The channel layer (`ChannelLayer`) and the cache (settings.CACHES, `RedisCache`) get pools of
the same kind and bound.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

# What these connections are called in Redis's CLIENT LIST (each sets it once, on connect).
CLIENT_NAME = "explorer-web"

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The cache's clients, one per (servers, options) for the whole process.
_cache_clients: dict[tuple, object] = {}
_cache_clients_lock = threading.Lock()


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


class SharedRedisCacheClient(RedisCacheClient):
    """Django's cache client, keeping one `redis.Redis` per connection pool: the stock one
    builds a new client object (and its table of response callbacks) for every command."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients_by_pool: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients_by_pool.get(id(pool))
        if client is None:
            client = self._clients_by_pool[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """Django's Redis cache with one client (and so one bounded pool) per process.

    Django keeps a cache object per async context, and under ASGI every request is a context of
    its own: the stock backend built a new client, pool and TCP connection for each request
    (a connect and a client setup on every page that reads the cache), and the pool's bound held
    per request instead of per process. The client is thread-safe and redis-py's pools start
    over after a fork, so sharing it is safe in web threads and Celery's prefork children."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _cache_clients_lock:
            client = _cache_clients.get(key)
            if client is None:
                client = _cache_clients[key] = self._class(self._servers, **self._options)
        return client
