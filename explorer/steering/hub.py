"""The web process's one subscriber to the live workers' frames (explorer/steering/streams.py).

Each event loop (a uvicorn process has one) gets one `FrameHub`: the process's Redis connection
pool (`redis`, which consumers and the HTTP endpoint use for their commands too), one Redis
pub/sub connection, subscribed to the `steer:frames:<run>` channel of every run a consumer of
this process follows, and one reader task that hands each published list of frames to that
consumer's callback. A
consumer subscribes before it enqueues its run, so the worker's first frames find it listening;
anything missed (a reconnect) shows up as a gap in the numbers, filled from the replay list.

When Redis goes away the reader drops its connection and reconnects with back-off (RETRY_S,
doubling to RETRY_MAX_S) on a fresh one, subscribed to the runs still followed then; meanwhile
`subscribe` fails at once (the caller answers with the outage's error frame) and the log gets one
line when Redis goes and one when it is back (explorer/core/outages.py), not one per try.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

from explorer.core import outages, redis_clients
from explorer.steering.streams import frames_channel

log = logging.getLogger(__name__)

FramesCallback = Callable[[str, list[dict]], None]  # (run, frames); must not block

# Reconnecting after Redis went away: first wait, and the most it grows to.
RETRY_S = 0.1
RETRY_MAX_S = 1.0

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameHub] = weakref.WeakKeyDictionary()


def frame_hub() -> FrameHub:
    """The running event loop's hub (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FrameHub(redis_clients.async_client())
    return hub


class RedisUnreachable(Exception):
    """Raised by `subscribe` while the hub is reconnecting; an outage of Redis to
    outages.service_of (it is raised from the error that took the connection)."""


class FrameHub:
    def __init__(self, redis: Any) -> None:
        self.redis = redis  # the loop's shared client (redis_clients.async_client)
        self.pubsub: Any = self.redis.pubsub(ignore_subscribe_messages=True)
        self.listeners: dict[bytes, tuple[str, FramesCallback]] = {}
        self.reader: asyncio.Task | None = None
        self.subscribed = asyncio.Event()
        self.lost: BaseException | None = None  # while reconnecting: the error that cut us off

    async def subscribe(self, run: str, callback: FramesCallback) -> None:
        """Follow `run`. Raises RedisUnreachable while Redis is away (nothing is registered)."""
        if self.lost is not None:
            raise RedisUnreachable("Redis is unreachable") from self.lost
        channel = frames_channel(run)
        self.listeners[channel.encode()] = (run, callback)
        try:
            await self.pubsub.subscribe(channel)
        except BaseException as exc:
            self.listeners.pop(channel.encode(), None)
            if isinstance(exc, Exception) and outages.service_of(exc) is not None:
                outages.tracker.down(outages.REDIS, exc)
            raise
        outages.tracker.up(outages.REDIS)  # logs only when it was down
        self.subscribed.set()
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read())

    async def unsubscribe(self, run: str) -> None:
        channel = frames_channel(run)
        if self.listeners.pop(channel.encode(), None) is None:
            return
        if self.lost is not None:
            return  # the reconnect subscribes only to the runs still followed
        try:
            await self.pubsub.unsubscribe(channel)
        except Exception as exc:
            if outages.service_of(exc) is None:
                log.exception("unsubscribing from %s failed", channel)
            # Redis away: the subscription dies with the connection; keep redis-py from
            # subscribing again when it reconnects.
            self.pubsub.channels.pop(channel.encode(), None)

    async def _read(self) -> None:
        while True:
            try:
                if not self.listeners:
                    self.subscribed.clear()
                    await self.subscribed.wait()
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if outages.service_of(exc) is None:
                    log.exception("reading steering frames failed; reconnecting")
                await self._reconnect(exc)
                continue
            if message is None or message.get("type") != "message":
                continue
            listener = self.listeners.get(message["channel"])
            if listener is None:
                continue  # unsubscribed meanwhile
            run, callback = listener
            try:
                callback(run, json.loads(message["data"]))
            except Exception:
                log.exception("handing frames of run %s to its consumer failed", run)

    async def _reconnect(self, exc: BaseException) -> None:
        """Replace the broken pub/sub connection by a fresh one subscribed to the runs followed
        now, waiting longer between tries while Redis stays away."""
        self.lost = exc
        outages.tracker.down(outages.REDIS, exc)
        old, delay = self.pubsub, RETRY_S
        with contextlib.suppress(Exception):  # it is broken already
            await old.aclose()
        while True:
            await asyncio.sleep(delay)
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            channels = list(self.listeners)
            try:
                await self.redis.ping()
                if channels:
                    await pubsub.subscribe(*channels)
                    # runs left meanwhile (their consumers gave up on the outage)
                    stale = [c for c in channels if c not in self.listeners]
                    if stale:
                        await pubsub.unsubscribe(*stale)
            except Exception as again:  # still away: the one line logged by the tracker
                if outages.service_of(again) is None:
                    log.exception("reconnecting to Redis for steering frames failed")
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.pubsub, self.lost = pubsub, None
            outages.tracker.up(outages.REDIS)
            return
