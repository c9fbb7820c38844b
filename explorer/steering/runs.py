"""One live generation, from a parsed `steer` to its last frame: what the websocket consumer
(consumers.py) and the HTTP endpoint (api.py, `POST /api/v1/steer`) both do.

- `resolve` checks a SteerMessage against a model/SAE catalogue cached for CATALOGUE_TTL_S and
  translates it into the engine's request (`selectors.steer_request_build`);
- `cached_frames` answers an identical request from the SteeringResult cache, found through the
  Redis index of result keys (no database round trip on a miss);
- `Run` is one generation on a live worker: `start` admits it (the caller's Redis writes, e.g.
  the client's rate limit `services.rate_limit_hit`, and counting it among the client's
  generations in flight, `services.in_flight_acquire`, STEER_MAX_IN_FLIGHT), follows its frames
  through the process's FrameHub (hub.py), then enqueues it on `live.<model>` with the client's
  tag (the worker's scheduler admits clients round-robin); `take` forwards the
  frames the hub hands over in order, filling a gap from the run's replay list; `check` is the
  watchdog's look at a quiet run (heartbeat gone, or no worker took it in time); `cancel` stops
  it. A run stops counting in flight when it finishes, fails, is cancelled (superseded, the
  client's cancel, its socket closed, its HTTP client gone) or is left (`leave`);
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
from explorer.core.clients import client_key
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


def client_id(*, user: Any, address: str | None, session_key: str | None = None) -> str:
    """Who the rate limit counts: `explorer.core.clients.client_key`, the account of a
    signed-in user, else the address (resolved through TRUSTED_PROXIES). `session_key` is
    accepted and not used: an anonymous client drops its cookie to get a fresh session."""
    return client_key(user=user, address=address)


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
    replays and its watchdog never interleave. A run with a `client` counts among that client's
    generations in flight from `admit` (or `start`) until it ends or is left.
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
        client: str | None = None,
    ) -> None:
        self.id = run_id or streams.new_run_id()
        self.client = client
        self.counted = False  # among the client's generations in flight (until released)
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
        """Admit the run (`admit`: the caller's Redis writes `also` and the client's count in
        flight, at once), follow its frames (handed to `on_frames`), then enqueue it. Raises
        what a write raised (e.g. RateLimited), having enqueued nothing and counted nothing.

        Admitting before following costs an accepted run one round trip; it spares a refused
        one subscribing and unsubscribing, so a client flooding past its cap costs this
        process little."""
        await self.admit(*also)
        client = streams.client_tag(self.client) if self.client is not None else None
        try:
            await self.follow(on_frames)
            # Publishing to the broker is network I/O: off the event loop.
            await sync_to_async(_enqueue, thread_sensitive=False)(
                request.payload(self.id, client=client), tasks.live_queue(request.model_slug)
            )
        except BaseException:
            await asyncio.shield(self.leave())
            raise

    async def admit(self, *also: Coroutine[Any, Any, Any]) -> None:
        """Count the run among its client's generations in flight (once; nothing without a
        client), together with the Redis writes `also` (independent round trips, at once:
        time to first token). Raises what a write raised (e.g. RateLimited past
        STEER_MAX_IN_FLIGHT), having left the run and counted nothing."""
        writes = list(also)
        if self.client is not None and not self.counted:
            writes.append(self._acquire())
        results = await asyncio.gather(*writes, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            await self.leave()
            raise failed

    async def _acquire(self) -> None:
        await services.in_flight_acquire(redis=self.redis, client=self.client, run=self.id)
        self.counted = True

    async def follow(self, on_frames: FramesCallback) -> None:
        """Subscribe to the run's frames (before it is enqueued, so none is missed)."""
        if self._hub is None:
            self._hub = frame_hub()
            await self._hub.subscribe(self.id, on_frames)

    async def leave(self) -> None:
        """Stop following the run once nothing more is wanted from it (it stops counting in
        flight too)."""
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.unsubscribe(self.id)
        await self._release()

    async def cancel(self) -> None:
        """The flag answers a worker that takes the run later; the message stops a running
        one before its next decode step. The client's slot is free when this returns."""
        self.cancelled = True
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(streams.cancel_key(self.id), b"1", ex=streams.REPLAY_TTL_S)
            pipe.publish(streams.CANCEL_CHANNEL, self.id)
            await asyncio.gather(pipe.execute(), self._release())

    async def _release(self) -> None:
        """Stop counting the run in flight (once). Never raises: a release lost to a Redis
        error is undone by the entry's expiry (STEER_IN_FLIGHT_TTL_S)."""
        if not self.counted:
            return
        self.counted = False
        try:
            await services.in_flight_release(redis=self.redis, client=self.client, run=self.id)
        except Exception as exc:
            if outages.service_of(exc) is None:
                log.exception("releasing run %s of %s failed", self.id, self.client)
            # Redis away: the outage is logged once elsewhere, and the entry expires.

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
        if self.finished:  # before the last frame: a client answering it at once has its place
            await self._release()
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
    ProtocolError (the same checks and messages as the websocket) and RateLimited (past the
    rate limit or the cap on generations in flight; the run counts in flight from here). The
    run is enqueued when the iterator is first read, and cancelled if the iterator is closed
    before the run finished (a client that went away); a failed run ends with an `error`
    frame. An iterator never read leaves its count to expire (STEER_IN_FLIGHT_TTL_S).
    """
    redis = frame_hub().redis  # the process's connection pool, shared with the hub
    request = await resolve(message, model_slug=model_slug)
    cached = await cached_frames(redis=redis, request=request)
    if cached is not None:
        return True, _replayed(cached, gen)
    out: asyncio.Queue[dict] = asyncio.Queue()
    run = Run(redis=redis, gen=gen, model=request.model_slug, send=out.put, client=client)
    await run.admit(services.rate_limit_hit(redis=redis, client=client))
    return False, _followed(run=run, request=request, out=out)


async def _replayed(frames: list[dict], gen: Any) -> AsyncIterator[dict]:
    for frame in frames:
        yield {**frame, "gen": gen}


async def _followed(
    *, run: Run, request: selectors.ResolvedSteer, out: asyncio.Queue[dict]
) -> AsyncIterator[dict]:
    """The frames of an admitted `run`, which sends them to `out`."""
    inbox: asyncio.Queue[list[dict]] = asyncio.Queue()
    gen = run.gen
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
