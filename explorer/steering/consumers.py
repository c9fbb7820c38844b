"""`/ws/steer/`: live steering over a websocket (DESIGN.md §6).

The consumer never waits on a generation. A `steer` is parsed strictly, checked against the
database, answered at once from the SteeringResult cache when an identical request finished
before, else rate-limited per client and enqueued on the model's `live.<model>` queue; the
worker publishes the run's numbered frames on `steer:frames:<run>`, which this consumer follows
through the process's FrameHub (hub.py), and forwards them with the client's `gen`.

- the request is checked against a model/SAE catalogue cached for CATALOGUE_TTL_S, and the
  cache is looked up through a Redis index of result keys, so a new request costs no database
  round trip (a cache hit costs one, to read the stored texts);
- latest wins: a new `steer` (or `cancel`) sets the previous run's Redis cancel flag and
  announces it to the workers; frames of a superseded run still pass through (the client
  ignores gens that are not its latest);
- frames of a run are handled one message at a time, in order, never beside a `resume`;
- a gap in the current run's numbers (a pub/sub message lost while reconnecting) is filled from
  the run's Redis replay list; `resume` replays after a client's `after_seq`, also on a new
  socket (the client's gen -> run map is kept in Redis);
- a watchdog reads the run's heartbeat: a worker that dies mid-generation, or no worker taking
  the request within STEER_START_TIMEOUT_S, gives an error frame, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.steering import selectors, services, streams
from explorer.steering.conf import limits
from explorer.steering.hub import frame_hub
from explorer.steering.protocol import (
    CancelMessage,
    ProtocolError,
    ResumeMessage,
    SteerMessage,
    gen_of,
    parse_message,
)

log = logging.getLogger(__name__)

# Frames from the worker prove it is alive; only a run silent for this long has its heartbeat
# checked.
QUIET_S = 1.0
# Superseded runs whose last frames are still forwarded (a slider drag supersedes many).
OLD_RUNS = 8


@dataclass
class RunState:
    run: str
    gen: int | str
    model: str
    started: float = field(default_factory=time.monotonic)
    last_seq: int = 0
    last_frame: float = field(default_factory=time.monotonic)
    seen_heartbeat: bool = False
    rows_done: set[str] = field(default_factory=set)
    finished: bool = False


def _result_frames(result_id: str) -> list[dict] | None:
    result = selectors.SteeringResult.objects.filter(pk=result_id).first()
    return selectors.result_frames(result) if result is not None else None


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


def _enqueue(payload: dict, queue: str) -> None:
    tasks.send(tasks.STEER, args=(payload,), queue=queue)


class SteerConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        import redis.asyncio

        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.model_slug: str | None = (query.get("model") or [None])[0]
        self.client = self._client_id()
        self.redis = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        self.current: RunState | None = None
        self.old: dict[str, RunState] = {}  # superseded runs whose frames still pass through
        self.following: set[str] = set()  # runs whose frames this socket is subscribed to
        self.hub = frame_hub()
        self.inbox: asyncio.Queue[tuple[str, list[dict]]] = asyncio.Queue()
        self.frames_lock = asyncio.Lock()  # frames and replays never interleave
        await self.accept()
        loop = asyncio.get_running_loop()
        self.watchdog = loop.create_task(self._watch())
        self.pump = loop.create_task(self._pump())

    @property
    def resumable(self) -> bool:
        """Whether `resume` may find this client's runs from another socket: only for a user or
        a session (an address may be shared by many people behind one NAT)."""
        return self.client[0] in "us"

    def _client_id(self) -> str:
        """Who the rate limit counts: the user, else the session, else the address."""
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return f"u{user.pk}"
        session = self.scope.get("session")
        if session is not None and session.session_key:
            return f"s{session.session_key}"
        client = self.scope.get("client") or ("unknown", 0)
        return f"a{client[0]}"

    async def disconnect(self, code: int) -> None:
        self.watchdog.cancel()
        self.pump.cancel()
        if self.current is not None and not self.current.finished:
            await self._cancel_run(self.current.run)
        for run in list(self.following):
            await self._leave(run)
        await self.redis.aclose()

    # -- client messages ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_json({"type": "error", "gen": None, "message": "send JSON text frames"})
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json(
                {"type": "error", "gen": None, "message": "a message must be JSON"}
            )
            return
        try:
            message = parse_message(content, limits())
            if isinstance(message, SteerMessage):
                await self._steer(message)
            elif isinstance(message, CancelMessage):
                await self._cancel(message)
            elif isinstance(message, ResumeMessage):
                await self._resume(message)
        except ApplicationError as exc:
            await self.send_json({"type": "error", "gen": gen_of(content), "message": exc.message})
        except Exception:
            log.exception("steering message failed")
            await self.send_json(
                {"type": "error", "gen": gen_of(content), "message": "internal error; try again"}
            )

    async def _steer(self, message: SteerMessage) -> None:
        await self._supersede()
        slug = message.model or self.model_slug
        catalogue = await _catalogue(slug)
        vectors = {}
        if message.vectors:
            vectors = await database_sync_to_async(_vector_infos)(
                [t.vector for t in message.vectors]
            )
        try:
            request = selectors.steer_request_build(
                message=message, catalogue=catalogue, vectors=vectors
            )
        except ProtocolError:  # the cached catalogue may predate a new SAE or a re-created model
            request = selectors.steer_request_build(
                message=message, catalogue=await _catalogue(slug, fresh=True), vectors=vectors
            )
        # The cache: Redis says which SteeringResult answers this key (set by the worker).
        result_id = await self.redis.get(streams.result_key(request.key))
        if result_id is not None:
            cached = await database_sync_to_async(_result_frames)(result_id.decode())
            if cached is not None:
                for frame in cached:
                    await self.send_json({**frame, "gen": message.gen})
                return
        run = streams.new_run_id()
        self.current = RunState(run=run, gen=message.gen, model=request.model_slug)
        writes = [services.rate_limit_hit(redis=self.redis, client=self.client), self._join(run)]
        if self.resumable:  # see _client_id
            writes.append(
                self.redis.set(
                    streams.gen_key(self.client, str(message.gen)), run, ex=streams.REPLAY_TTL_S
                )
            )
        try:  # independent Redis round trips at once (time to first token)
            await asyncio.gather(*writes)
        except BaseException:
            self.current = None
            raise
        payload = request.payload(run)
        # Publishing to the broker is network I/O: off the event loop.
        await sync_to_async(_enqueue, thread_sensitive=False)(
            payload, tasks.live_queue(request.model_slug)
        )

    async def _supersede(self) -> None:
        cur, self.current = self.current, None
        if cur is not None and not cur.finished:
            await self._cancel_run(cur.run)
            self.old[cur.run] = cur
            while len(self.old) > OLD_RUNS:  # a superseded run stops within a step or two
                await self._leave(self.old.pop(next(iter(self.old))).run)

    async def _cancel(self, message: CancelMessage) -> None:
        if self.current is not None and self.current.gen == message.gen:
            await self._supersede()

    async def _cancel_run(self, run: str) -> None:
        """The flag answers a worker that takes the run later; the message stops a running
        one before its next decode step."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await (
                pipe.set(streams.cancel_key(run), b"1", ex=streams.REPLAY_TTL_S)
                .publish(streams.CANCEL_CHANNEL, run)
                .execute()
            )

    async def _join(self, run: str) -> None:
        if run not in self.following:
            self.following.add(run)
            await self.hub.subscribe(run, self._arrived)

    async def _leave(self, run: str) -> None:
        """Stop following a run once nothing more is wanted from it."""
        if run in self.following:
            self.following.discard(run)
            await self.hub.unsubscribe(run)

    def _arrived(self, run: str, frames: list[dict]) -> None:
        self.inbox.put_nowait((run, frames))

    async def _pump(self) -> None:
        """Frames from the hub, one message at a time, in arrival order."""
        while True:
            run, frames = await self.inbox.get()
            try:
                async with self.frames_lock:
                    await self._frames(run, frames)
            except Exception:
                log.exception("forwarding frames of run %s failed", run)

    async def _resume(self, message: ResumeMessage) -> None:
        state = (
            self.current
            if self.current is not None and self.current.gen == message.gen
            else next((s for s in self.old.values() if s.gen == message.gen), None)
        )
        if state is None:
            raw = (
                await self.redis.get(streams.gen_key(self.client, str(message.gen)))
                if self.resumable
                else None
            )
            if raw is None:
                raise ProtocolError(f"nothing to resume for gen {message.gen!r}")
            await self._supersede()
            state = RunState(run=raw.decode(), gen=message.gen, model="")
            state.seen_heartbeat = True  # it ran before; silence now means it is gone or done
            self.current = state
            await self._join(state.run)
        async with self.frames_lock:
            state.last_seq = message.after_seq
            await self._replay(state, upto=None)

    async def _replay(self, state: RunState, upto: int | None) -> None:
        """Send the run's stored frames after state.last_seq (up to `upto` exclusive)."""
        raw = await self.redis.lrange(streams.replay_key(state.run), 0, -1)
        for item in raw:
            frame = json.loads(item)
            if frame["seq"] <= state.last_seq or (upto is not None and frame["seq"] >= upto):
                continue
            await self._forward(state, frame)

    # -- frames from the worker -------------------------------------------------------------

    async def _frames(self, run: str, frames: list[dict]) -> None:
        if self.current is not None and self.current.run == run:
            state = self.current
            for frame in frames:
                if frame["seq"] <= state.last_seq:
                    continue  # already sent (by a replay)
                if frame["seq"] > state.last_seq + 1:
                    await self._replay(state, upto=frame["seq"])
                if frame["seq"] == state.last_seq + 1:
                    await self._forward(state, frame)
                else:  # still missing: the replay list lost it too
                    await self._fail(state, "lost part of the stream; send the request again")
                    return
        elif run in self.old:
            for frame in frames:
                await self.send_json({**frame, "gen": self.old[run].gen})

    async def _forward(self, state: RunState, frame: dict) -> None:
        state.last_seq = frame["seq"]
        state.last_frame = time.monotonic()
        state.seen_heartbeat = True  # a frame proves a worker took the run
        if frame["type"] == "done":
            state.rows_done.add(frame["row"])
            state.finished = len(state.rows_done) == 2
        elif frame["type"] == "error":
            state.finished = True
        await self.send_json({**frame, "gen": state.gen})
        if state.finished:
            await self._leave(state.run)

    async def _fail(self, state: RunState, message: str) -> None:
        state.finished = True
        await self._cancel_run(state.run)
        await self._leave(state.run)
        await self.send_json({"type": "error", "gen": state.gen, "message": message})

    # -- the watchdog -------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every WATCHDOG_EVERY_S until disconnect: fail the current run when its worker is
        gone (heartbeat expired) or none took it in time."""
        while True:
            await asyncio.sleep(streams.WATCHDOG_EVERY_S)
            try:
                await self._check(self.current)
            except Exception:  # e.g. Redis briefly away: try again next time
                log.exception("steering watchdog check failed")

    async def _check(self, state: RunState | None) -> None:
        if state is None or state.finished:
            return
        now = time.monotonic()
        if now - state.last_frame < QUIET_S:
            return
        if await self.redis.exists(streams.heartbeat_key(state.run)):
            state.seen_heartbeat = True
            return
        async with self.frames_lock:  # its last frames may have been published but lost
            await self._replay(state, upto=None)
        if state is not self.current or state.finished:
            return  # moved on while we asked Redis, or the replay had its end
        if state.seen_heartbeat:
            await self._fail(state, "the worker stopped while generating; try again")
        elif now - state.started > limits().start_timeout_s:
            await self._fail(
                state,
                f"no worker took the request within "
                f"{limits().start_timeout_s:g} s (is a worker consuming "
                f"live.{state.model}?)",
            )
