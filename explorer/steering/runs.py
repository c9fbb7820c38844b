"""One live generation, from a parsed `steer` to its last frame: what the websocket consumer
(consumers.py) and the HTTP endpoint (api.py, `POST /api/v1/steer`) both do.

- `resolve` checks a SteerMessage against a model/SAE catalogue cached for CATALOGUE_TTL_S and
  translates it into the engine's request (`selectors.steer_request_build`);
- `cached_frames` answers an identical request from the SteeringResult cache, found through the
  Redis index of result keys (no database round trip on a miss);
- `Run` is one generation on a live worker: `start` follows the run's frames through the
  process's FrameHub (hub.py), together with the caller's Redis writes (the client's rate limit,
  `services.rate_limit_hit`), then enqueues it on `live.<model>`; `take` forwards the frames the
  hub hands over in order, filling a gap from the run's replay list; `check` is the watchdog's
  look at a quiet run (heartbeat gone, or no worker took it in time); `cancel` stops it;
- `steer_once` is all of that for one request, as an async iterator of frames (HTTP).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from explorer.core import outages, tasks
from explorer.steering import selectors, services, streams
from explorer.steering.conf import limits
from explorer.steering.hub import FrameHub, FramesCallback, frame_hub
from explorer.steering.protocol import ProtocolError, SteerMessage

log = logging.getLogger(__name__)

# Frames from the worker prove it is alive; only a run silent for this long has its heartbeat
# checked.
QUIET_S = 1.0
INTERNAL_ERROR = "internal error; try again"

Send = Callable[[dict], Awaitable[None]]


def client_id(*, user: Any, session_key: str | None, address: str | None) -> str:
    """Who the rate limit counts: the user, else the session, else the address (which many
    people behind one NAT may share)."""
    if user is not None and user.is_authenticated:
        return f"u{user.pk}"
    if session_key:
        return f"s{session_key}"
    return f"a{address or 'unknown'}"


# --------------------------------------------------------------------------- resolve and cache

# model slug (None: "the only model") -> (expires, Catalogue). Models and SAEs change rarely;
# a new SAE is steerable within CATALOGUE_TTL_S. Saves a database round trip per request.
CATALOGUE_TTL_S = 10.0
_catalogues: dict[str | None, tuple[float, selectors.Catalogue]] = {}


async def _catalogue(model_slug: str | None, *, fresh: bool = False) -> selectors.Catalogue:
    hit = _catalogues.get(model_slug)
    if not fresh and hit is not None and hit[0] > time.monotonic():
        return hit[1]
    catalogue = await database_sync_to_async(selectors.steer_catalogue)(model_slug=model_slug)
    _catalogues[model_slug] = (time.monotonic() + CATALOGUE_TTL_S, catalogue)
    return catalogue


def _vector_infos(ids: list[int]) -> dict:
    return selectors.vector_infos(ids=ids)


async def resolve(message: SteerMessage, *, model_slug: str | None) -> selectors.ResolvedSteer:
    """The engine request of `message` (its `model`, else `model_slug`, else the only model).

    Raises ProtocolError as `selectors.steer_request_build` does."""
    slug = message.model or model_slug
    catalogue = await _catalogue(slug)
    vectors = {}
    if message.vectors:
        vectors = await database_sync_to_async(_vector_infos)([t.vector for t in message.vectors])
    try:
        return selectors.steer_request_build(message=message, catalogue=catalogue, vectors=vectors)
    except ProtocolError:  # the cached catalogue may predate a new SAE or a re-created model
        return selectors.steer_request_build(
            message=message, catalogue=await _catalogue(slug, fresh=True), vectors=vectors
        )


def _result_frames(result_id: str) -> list[dict] | None:
    result = selectors.SteeringResult.objects.filter(pk=result_id).first()
    return selectors.result_frames(result) if result is not None else None


async def cached_frames(*, redis: Any, request: selectors.ResolvedSteer) -> list[dict] | None:
    """The frames of the stored result of an identical request (without `gen`), or None. Redis
    says which SteeringResult answers the key (the worker sets it after storing the row)."""
    result_id = await redis.get(streams.result_key(request.key))
    if result_id is None:
        return None
    return await database_sync_to_async(_result_frames)(result_id.decode())


def _enqueue(payload: dict, queue: str) -> None:
    tasks.send(tasks.STEER, args=(payload,), queue=queue)


# --------------------------------------------------------------------------- one run


class Run:
    """One generation on a live worker, followed from its enqueue to its last frame.

    Frames go to `send` in order, each with the client's `gen`; a run is finished after both
    rows' `done` or an `error`. All sending happens under `lock`, so the frames of a run, its
    replays and its watchdog never interleave.
    """

    def __init__(
        self,
        *,
        redis: Any,
        gen: Any,
        model: str,
        send: Send,
        run_id: str | None = None,
        resumed: bool = False,
    ) -> None:
        self.id = run_id or streams.new_run_id()
        self.redis = redis
        self.gen = gen
        self.model = model
        self.send = send
        self.started = self.last_frame = time.monotonic()
        self.last_seq = 0
        # A resumed run ran before: silence now means it is gone or done.
        self.seen_heartbeat = resumed
        self.rows_done: set[str] = set()
        self.finished = False
        self.cancelled = False
        self.lock = asyncio.Lock()
        self._hub: FrameHub | None = None  # while following

    async def start(
        self,
        *,
        request: selectors.ResolvedSteer,
        on_frames: FramesCallback,
        also: tuple[Coroutine[Any, Any, Any], ...] = (),
    ) -> None:
        """Follow the run's frames (handed to `on_frames`), with the caller's Redis writes
        `also` at once (independent round trips: time to first token), then enqueue it.
        Raises what a write of `also` raised (e.g. RateLimited), having enqueued nothing."""
        results = await asyncio.gather(self.follow(on_frames), *also, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            await self.leave()
            raise failed
        # Publishing to the broker is network I/O: off the event loop.
        await sync_to_async(_enqueue, thread_sensitive=False)(
            request.payload(self.id), tasks.live_queue(request.model_slug)
        )

    async def follow(self, on_frames: FramesCallback) -> None:
        """Subscribe to the run's frames (before it is enqueued, so none is missed)."""
        if self._hub is None:
            self._hub = frame_hub()
            await self._hub.subscribe(self.id, on_frames)

    async def leave(self) -> None:
        """Stop following the run once nothing more is wanted from it."""
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.unsubscribe(self.id)

    async def cancel(self) -> None:
        """The flag answers a worker that takes the run later; the message stops a running
        one before its next decode step."""
        self.cancelled = True
        async with self.redis.pipeline(transaction=False) as pipe:
            await (
                pipe.set(streams.cancel_key(self.id), b"1", ex=streams.REPLAY_TTL_S)
                .publish(streams.CANCEL_CHANNEL, self.id)
                .execute()
            )

    async def take(self, frames: list[dict]) -> None:
        """Forward frames the hub handed over: in order, a gap filled from the replay list, a
        gap the list cannot fill failing the run."""
        async with self.lock:
            for frame in frames:
                if frame["seq"] <= self.last_seq:
                    continue  # already sent (by a replay)
                if frame["seq"] > self.last_seq + 1:
                    await self._replay(upto=frame["seq"])
                if frame["seq"] == self.last_seq + 1:
                    await self._forward(frame)
                else:  # still missing: the replay list lost it too
                    await self._fail("lost part of the stream; send the request again")
                    return

    async def replay(self, *, after: int) -> None:
        """Send the run's stored frames after seq `after` again (a client's `resume`)."""
        async with self.lock:
            self.last_seq = after
            await self._replay(upto=None)

    async def check(self) -> None:
        """The watchdog's look: fail the run when its worker is gone (heartbeat expired) or
        none took it within STEER_START_TIMEOUT_S. A finished or cancelled run is left alone."""
        if self.finished or self.cancelled:
            return
        now = time.monotonic()
        if now - self.last_frame < QUIET_S:
            return
        try:
            alive = await self.redis.exists(streams.heartbeat_key(self.id))
        except Exception as exc:
            if outages.service_of(exc) is None:
                raise
            # Redis away: the run's frames cannot reach us; say so once, not every check.
            outages.tracker.down(outages.REDIS, exc)
            async with self.lock:
                if not (self.finished or self.cancelled):
                    await self._fail(outages.message(outages.REDIS))
            return
        if alive:
            self.seen_heartbeat = True
            return
        async with self.lock:  # its last frames may have been published but lost
            await self._replay(upto=None)
            if self.finished or self.cancelled:
                return  # the replay had its end, or the client moved on meanwhile
            if self.seen_heartbeat:
                await self._fail("the worker stopped while generating; try again")
            elif now - self.started > limits().start_timeout_s:
                await self._fail(
                    f"no worker took the request within {limits().start_timeout_s:g} s "
                    f"(is a worker consuming live.{self.model}?)"
                )

    async def _replay(self, *, upto: int | None) -> None:
        """Send the run's stored frames after last_seq (up to `upto` exclusive)."""
        raw = await self.redis.lrange(streams.replay_key(self.id), 0, -1)
        for item in raw:
            frame = json.loads(item)
            if frame["seq"] <= self.last_seq or (upto is not None and frame["seq"] >= upto):
                continue
            await self._forward(frame)

    async def _forward(self, frame: dict) -> None:
        self.last_seq = frame["seq"]
        self.last_frame = time.monotonic()
        self.seen_heartbeat = True  # a frame proves a worker took the run
        if frame["type"] == "done":
            self.rows_done.add(frame["row"])
            self.finished = len(self.rows_done) == 2
        elif frame["type"] == "error":
            self.finished = True
        await self.send({**frame, "gen": self.gen})
        if self.finished:
            await self.leave()

    async def _fail(self, message: str) -> None:
        self.finished = True
        try:
            await self.cancel()
        except Exception as exc:  # Redis away: a worker that could run it cannot reach it either
            if outages.service_of(exc) is None:
                raise
        await self.leave()
        await self.send({"type": "error", "gen": self.gen, "message": message})


# --------------------------------------------------------------------------- one request


async def steer_once(
    message: SteerMessage, *, client: str, gen: Any = None, model_slug: str | None = None
) -> tuple[bool, AsyncIterator[dict]]:
    """One steer request followed to its end: (cached, its frames), each with `gen`.

    Everything that may refuse the request happens before this returns: it raises
    ProtocolError (the same checks and messages as the websocket) and RateLimited. The run is
    enqueued when the iterator is first read, and cancelled if the iterator is closed before
    the run finished (a client that went away); a failed run ends with an `error` frame.
    """
    redis = frame_hub().redis  # the process's connection pool, shared with the hub
    request = await resolve(message, model_slug=model_slug)
    cached = await cached_frames(redis=redis, request=request)
    if cached is not None:
        return True, _replayed(cached, gen)
    await services.rate_limit_hit(redis=redis, client=client)
    return False, _followed(redis=redis, request=request, gen=gen)


async def _replayed(frames: list[dict], gen: Any) -> AsyncIterator[dict]:
    for frame in frames:
        yield {**frame, "gen": gen}


async def _followed(
    *, redis: Any, request: selectors.ResolvedSteer, gen: Any
) -> AsyncIterator[dict]:
    out: asyncio.Queue[dict] = asyncio.Queue()
    inbox: asyncio.Queue[list[dict]] = asyncio.Queue()
    run = Run(redis=redis, gen=gen, model=request.model_slug, send=out.put)
    try:
        await run.start(request=request, on_frames=lambda _run, frames: inbox.put_nowait(frames))
        while not (run.finished and out.empty()):
            if not out.empty():
                yield out.get_nowait()
                continue
            try:
                frames = await asyncio.wait_for(inbox.get(), streams.WATCHDOG_EVERY_S)
            except TimeoutError:
                await run.check()
            else:
                await run.take(frames)
    except Exception as exc:
        service = outages.service_of(exc)
        if service is None:
            log.exception("following steering run %s failed", run.id)
            yield {"type": "error", "gen": gen, "message": INTERNAL_ERROR}
        else:
            outages.tracker.down(service, exc)
            yield outages.error_frame(service, gen)
    finally:
        if not run.finished:
            try:
                await asyncio.shield(run.cancel())
            except Exception as exc:  # Redis away: no worker can run it either
                if outages.service_of(exc) is None:
                    raise
        await run.leave()
