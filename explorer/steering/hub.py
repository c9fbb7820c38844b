"""The web process's one subscriber to the live workers' frames (explorer/steering/streams.py).

Each event loop (a uvicorn process has one) gets one `FrameHub`: the process's Redis connection
pool (`redis`, which consumers and the HTTP endpoint use for their commands too), one Redis
pub/sub connection, subscribed to the `steer:frames:<run>` channel of every run a consumer of
this process follows, and one reader task that hands each published list of frames to that
consumer's callback. A
consumer subscribes before it enqueues its run, so the worker's first frames find it listening;
anything missed (a reconnect) shows up as a gap in the numbers, filled from the replay list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings

from explorer.steering.streams import frames_channel

log = logging.getLogger(__name__)

FramesCallback = Callable[[str, list[dict]], None]  # (run, frames); must not block

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameHub] = weakref.WeakKeyDictionary()


def frame_hub() -> FrameHub:
    """The running event loop's hub (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FrameHub(settings.REDIS_URL)
    return hub


# Connections of a process's pool (`FrameHub.redis`, every socket's and HTTP request's Redis
# commands): past it a command waits up to POOL_WAIT_S for one to come free, rather than
# failing, when hundreds of sockets send at once.
POOL_CONNECTIONS = 100
POOL_WAIT_S = 10.0


class FrameHub:
    def __init__(self, redis_url: str) -> None:
        import redis.asyncio

        pool = redis.asyncio.BlockingConnectionPool.from_url(
            redis_url, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_S
        )
        self.redis = redis.asyncio.Redis(connection_pool=pool)
        self.pubsub: Any = self.redis.pubsub(ignore_subscribe_messages=True)
        self.listeners: dict[bytes, tuple[str, FramesCallback]] = {}
        self.reader: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    async def subscribe(self, run: str, callback: FramesCallback) -> None:
        channel = frames_channel(run)
        self.listeners[channel.encode()] = (run, callback)
        await self.pubsub.subscribe(channel)
        self.subscribed.set()
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read())

    async def unsubscribe(self, run: str) -> None:
        channel = frames_channel(run)
        if self.listeners.pop(channel.encode(), None) is None:
            return
        try:
            await self.pubsub.unsubscribe(channel)
        except Exception:  # Redis away: the subscription dies with the connection anyway
            log.exception("unsubscribing from %s failed", channel)

    async def _read(self) -> None:
        while True:
            try:
                if not self.pubsub.subscribed:
                    self.subscribed.clear()
                    await self.subscribed.wait()
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. Redis restarting: redis-py resubscribes on reconnect
                log.exception("reading steering frames failed; retrying")
                await asyncio.sleep(0.5)
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
