"""`/ws/steer/`: live steering over a websocket (DESIGN.md §6).

The consumer never waits on a generation. A `steer` is parsed strictly, checked against the
database, answered at once from the SteeringResult cache when an identical request finished
before, else rate-limited per client and enqueued on the model's `live.<model>` queue; the
worker publishes the run's numbered frames on `steer:frames:<run>`, which this consumer follows
through the process's FrameHub (hub.py), and forwards them with the client's `gen`.

- one generation (resolve, cache, rate limit, follow, enqueue, forward in order, watchdog) is
  runs.py's, shared with the HTTP endpoint; this consumer adds what a socket needs on top: a
  new request costs no database round trip (a cache hit costs one, to read the stored texts);
- latest wins: a new `steer` (or `cancel`) sets the previous run's Redis cancel flag and
  announces it to the workers, and frees its place among the client's generations in flight
  (STEER_MAX_IN_FLIGHT, across all the client's sockets); frames of a superseded run still
  pass through (the client ignores gens that are not its latest);
- frames of a run are handled one message at a time, in order, never beside a `resume`;
- a gap in the current run's numbers (a pub/sub message lost while reconnecting) is filled from
  the run's Redis replay list; `resume` replays after a client's `after_seq`, also on a new
  socket (the client's gen -> run map is kept in Redis);
- a watchdog reads the run's heartbeat: a worker that dies mid-generation, or no worker taking
  the request within STEER_START_TIMEOUT_S, gives an error frame, never a hang;
- Redis or PostgreSQL unreachable (explorer/core/outages.py): a socket that connects then, a
  request that needs it and a run it cuts off each get the outage's error frame, and the
  socket stays open: it steers again once the service is back.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from explorer.core import outages, redis_clients, untrusted
from explorer.core.exceptions import ApplicationError
from explorer.steering import runs, services, streams
from explorer.steering.conf import limits
from explorer.steering.protocol import (
    CancelMessage,
    ProtocolError,
    ResumeMessage,
    SteerMessage,
    gen_of,
    loads,
    parse_message,
)

log = logging.getLogger(__name__)

# Superseded runs whose last frames are still forwarded (a slider drag supersedes many).
OLD_RUNS = 8
CLOSE_BAD_URL = 4400  # the socket's URL cannot be served (after an error frame saying why)


class SteerConsumer(AsyncJsonWebsocketConsumer):
    # No channel layer: frames come through the hub, and a socket with a layer channel dies
    # with Redis (its receive loop raises) without running disconnect(), and leaves a buffer
    # in channels_redis behind when it closes.
    channel_layer_alias = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.model_slug: str | None = (query.get("model") or [None])[0]
        self.client = self._client_id()
        self.owner = self._owner()
        self.redis = redis_clients.async_client()  # the process's pool, shared by all sockets
        self.current: runs.Run | None = None
        self.old: dict[str, runs.Run] = {}  # superseded runs whose frames still pass through
        self.inbox: asyncio.Queue[tuple[str, list[dict]]] = asyncio.Queue()
        await self.accept()
        loop = asyncio.get_running_loop()
        self.watchdog = loop.create_task(self._watch())
        self.pump = loop.create_task(self._pump())
        problem = untrusted.text_problem(self.model_slug or "")
        if problem is not None:  # no model slug holds one: say so rather than fail a query
            message = f"model in the URL contains {problem}, which is not allowed."
            await self.send_json({"type": "error", "gen": None, "message": message})
            await self.close(code=CLOSE_BAD_URL)
            return
        service = await self._outage()
        if service is not None:  # the socket stays open: it works again once the service is back
            await self.send_json(outages.error_frame(service))

    async def _outage(self) -> str | None:
        """The service a steer would fail on now, if any: Redis (one PING), or PostgreSQL when
        this process saw it down (probed again at most once a second)."""
        try:
            await self.redis.ping()
        except Exception as exc:
            if outages.service_of(exc) is None:
                raise
            outages.tracker.down(outages.REDIS, exc)
            return outages.REDIS
        outages.tracker.up(outages.REDIS)
        if not outages.tracker.is_down(outages.DATABASE):
            return None
        if outages.DATABASE in outages.tracker.due_probes():
            await sync_to_async(outages.probe, thread_sensitive=False)(outages.DATABASE)
        return outages.DATABASE if outages.tracker.is_down(outages.DATABASE) else None

    @property
    def resumable(self) -> bool:
        """Whether `resume` may find this client's runs from another socket: only for a user or
        a session (an address may be shared by many people behind one NAT)."""
        return self.owner is not None

    def _client_id(self) -> str:
        """Who the rate limit counts (`runs.client_id`: the account, else the address)."""
        return runs.client_id(
            user=self.scope.get("user"), address=(self.scope.get("client") or ("unknown", 0))[0]
        )

    def _owner(self) -> str | None:
        """Whose runs `resume` may find from another socket: the user's, else the session's."""
        user, session = self.scope.get("user"), self.scope.get("session")
        if user is not None and user.is_authenticated:
            return f"u{user.pk}"
        key = session.session_key if session is not None else None
        return f"s{key}" if key else None

    async def disconnect(self, code: int) -> None:
        self.watchdog.cancel()
        self.pump.cancel()
        if self.current is not None and not self.current.finished:
            try:
                await self.current.cancel()
            except Exception as exc:  # Redis away: no worker can run it either
                if outages.service_of(exc) is None:
                    raise
        for run in [self.current, *self.old.values()]:
            if run is not None:
                await run.leave()

    # -- client messages ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_json({"type": "error", "gen": None, "message": "send JSON text frames"})
            return
        try:
            content = loads(text_data)
        except ApplicationError as exc:
            await self.send_json({"type": "error", "gen": None, "message": exc.message})
            return
        try:
            message = parse_message(content, limits())
            if isinstance(message, SteerMessage):
                await self._steer(message)
            elif isinstance(message, CancelMessage):
                await self._cancel(message)
            elif isinstance(message, ResumeMessage):
                await self._resume(message)
        except ApplicationError as exc:  # `code` as in the API's error object: rate_limited, ...
            await self.send_json(
                {"type": "error", "gen": gen_of(content), "message": exc.message, "code": exc.code}
            )
        except Exception as exc:
            service = outages.service_of(exc)
            if service is not None:  # Redis or PostgreSQL away: say so; logged once
                outages.tracker.down(service, exc)
                await self.send_json(outages.error_frame(service, gen_of(content)))
                return
            log.exception("steering message failed")
            await self.send_json(
                {"type": "error", "gen": gen_of(content), "message": runs.INTERNAL_ERROR}
            )

    async def _steer(self, message: SteerMessage) -> None:
        await self._supersede()
        request = await runs.resolve(message, model_slug=self.model_slug)
        cached = await runs.cached_frames(redis=self.redis, request=request)
        if cached is not None:
            for frame in cached:
                await self.send_json({**frame, "gen": message.gen})
            return
        run = runs.Run(
            redis=self.redis,
            gen=message.gen,
            model=request.model_slug,
            send=self.send_json,
            client=self.client,
        )
        # Current before it is enqueued: its first frames may arrive before start() returns.
        self.current = run
        also = [services.rate_limit_hit(redis=self.redis, client=self.client)]
        if self.resumable:  # see _owner
            also.append(
                self.redis.set(
                    streams.gen_key(self.owner, str(message.gen)), run.id, ex=streams.REPLAY_TTL_S
                )
            )
        try:
            await run.start(request=request, on_frames=self._arrived, also=tuple(also))
        except BaseException:
            self.current = None
            raise

    async def _supersede(self) -> None:
        cur, self.current = self.current, None
        if cur is not None and not cur.finished:
            self.old[cur.id] = cur  # first: left on disconnect even if the cancel fails
            while len(self.old) > OLD_RUNS:  # a superseded run stops within a step or two
                await self.old.pop(next(iter(self.old))).leave()
            await cur.cancel()

    async def _cancel(self, message: CancelMessage) -> None:
        if self.current is not None and self.current.gen == message.gen:
            await self._supersede()

    def _arrived(self, run: str, frames: list[dict]) -> None:
        self.inbox.put_nowait((run, frames))

    async def _pump(self) -> None:
        """Frames from the hub, one message at a time, in arrival order."""
        while True:
            run, frames = await self.inbox.get()
            try:
                await self._frames(run, frames)
            except Exception:
                log.exception("forwarding frames of run %s failed", run)

    async def _resume(self, message: ResumeMessage) -> None:
        run = (
            self.current
            if self.current is not None and self.current.gen == message.gen
            else next((r for r in self.old.values() if r.gen == message.gen), None)
        )
        if run is None:
            raw = (
                await self.redis.get(streams.gen_key(self.owner, str(message.gen)))
                if self.resumable
                else None
            )
            if raw is None:
                raise ProtocolError(f"nothing to resume for gen {message.gen!r}")
            await self._supersede()
            run = runs.Run(
                redis=self.redis,
                gen=message.gen,
                model="",
                send=self.send_json,
                run_id=raw.decode(),
                resumed=True,
            )
            self.current = run
            await run.follow(self._arrived)
        await run.replay(after=message.after_seq)

    # -- frames from the worker -------------------------------------------------------------

    async def _frames(self, run: str, frames: list[dict]) -> None:
        if self.current is not None and self.current.id == run:
            await self.current.take(frames)
        elif run in self.old:
            for frame in frames:
                await self.send_json({**frame, "gen": self.old[run].gen})

    # -- the watchdog -------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every WATCHDOG_EVERY_S until disconnect: fail the current run when its worker is
        gone (heartbeat expired) or none took it in time."""
        while True:
            await asyncio.sleep(streams.WATCHDOG_EVERY_S)
            try:
                if self.current is not None:
                    await self.current.check()
            except Exception:  # e.g. Redis briefly away: try again next time
                log.exception("steering watchdog check failed")
