"""Per-client limits on expensive work, kept in Redis so every web process counts together.

- Rate: a fixed window per (limit name, client): INCR + EXPIRE in one transaction. Past the
  limit, `RateLimited` (429) says how long to wait; the API sends that as `Retry-After`.
- Concurrency: a slot per running job in a sorted set per (limit name, client), scored by the
  time its holder last refreshed it. A holder refreshes while it works and releases in a
  `finally`; a slot whose holder died (no release, no refresh) lapses after SLOT_TTL_S, so a
  killed process never locks a client out for long.

Clients are `explorer.core.clients.client_key` strings. Sync functions use this process's
Redis connection pool (views, services); the `a`-prefixed ones take an asyncio Redis client.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from explorer.core.exceptions import ApplicationError

# A concurrency slot not refreshed for this long is taken to be abandoned.
SLOT_TTL_S = 120
# A holder refreshes its slot at most this often (a refresh is one Redis round trip).
SLOT_REFRESH_S = 30


class RateLimited(ApplicationError):
    """Over a rate or concurrency limit; `retry_after` (whole seconds) goes out as the
    `Retry-After` header and as `retry_after` in the API's error object."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, code=code, details={"retry_after": self.retry_after})


@dataclass(frozen=True)
class Rate:
    """At most `limit` `what` per `window_s` seconds per client; `name` keys the counters."""

    name: str
    limit: int
    window_s: int
    what: str

    def _key(self, client: str, window: int) -> str:
        return f"limit:v1:{self.name}:{client}:{window}"

    def _check(self, count: int, window: int, now: float) -> None:
        if count > self.limit:
            wait = (window + 1) * self.window_s - now
            raise RateLimited(
                f"rate limit: at most {self.limit} {self.what} per {self.window_s} s; "
                f"try again in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def hit(self, *, client: str) -> None:
        """Count one for `client`. Raises RateLimited past the limit."""
        now = time.time()
        window = int(now // self.window_s)
        key = self._key(client, window)
        with redis_client().pipeline(transaction=True) as pipe:
            count, _ = pipe.incr(key).expire(key, self.window_s + 1).execute()
        self._check(count, window, now)

    async def ahit(self, *, redis: Any, client: str) -> None:
        """`hit` on an asyncio Redis client."""
        now = time.time()
        window = int(now // self.window_s)
        key = self._key(client, window)
        async with redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, self.window_s + 1).execute()
        self._check(count, window, now)


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` `what` running at once per client (client "*": over all clients)."""

    name: str
    limit: int
    what: str
    busy_message: str = ""  # the refusal; defaults to one built from `what`
    retry_after_s: float = 10.0  # what a refusal suggests: no finish time is known

    def acquire(self, *, client: str) -> Slot:
        """A slot for `client`. Raises RateLimited (code "too_many_at_once") when it holds
        `limit` already (two racing for the last slot may both be refused)."""
        key = f"slots:v1:{self.name}:{client}"
        token = secrets.token_hex(8)
        now = time.time()
        with redis_client().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - SLOT_TTL_S)
            pipe.zadd(key, {token: now})
            pipe.zcard(key)
            pipe.expire(key, SLOT_TTL_S)
            _, _, held, _ = pipe.execute()
        if held > self.limit:
            redis_client().zrem(key, token)
            raise RateLimited(
                self.busy_message
                or f"at most {self.limit} {self.what} at once; try again when one has finished",
                retry_after=self.retry_after_s,
                code="too_many_at_once",
            )
        return Slot(key=key, token=token, refreshed=now)


@dataclass
class Slot:
    """A held concurrency slot. `arefresh` while working, `arelease` (idempotent) when done."""

    key: str
    token: str
    refreshed: float
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            redis_client().zrem(self.key, self.token)

    async def arefresh(self, redis: Any) -> None:
        """Keep the slot alive (only once per SLOT_REFRESH_S; cheap to call per chunk)."""
        now = time.time()
        if not self.released and now - self.refreshed >= SLOT_REFRESH_S:
            self.refreshed = now
            async with redis.pipeline(transaction=True) as pipe:
                await (
                    pipe.zadd(self.key, {self.token: now}, xx=True)
                    .expire(self.key, SLOT_TTL_S)
                    .execute()
                )

    async def arelease(self, redis: Any) -> None:
        if not self.released:
            self.released = True
            await redis.zrem(self.key, self.token)


_pools: dict[str, Any] = {}


def redis_client() -> Any:
    """This process's sync Redis client for settings.REDIS_URL (one connection pool)."""
    import redis

    url = settings.REDIS_URL
    client = _pools.get(url)
    if client is None:
        client = _pools[url] = redis.Redis.from_url(url, socket_timeout=5)
    return client
