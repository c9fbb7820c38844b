"""When Redis or PostgreSQL is unreachable: what counts as that, what users are told, and one
log line per change of state.

Every interface maps an outage to the same words: pages answer a 503 page, the JSON API a 503
`{"error": {"code": "unavailable", "service": ..., "message": ...}}`, both with Retry-After
(core/views.py `server_error`, api/errors.py); websockets send `{"type": "error", "gen", "message"}`
(steering/consumers.py, and `websocket_guard` below for every other socket). Nothing here holds
a connection: each caller fails fast on its own, and recovers by itself on its next try.

`tracker` remembers which service is down in this process, so the log gets one WARNING when one
goes down and one INFO when it is back, instead of a traceback per request or per socket. It
learns "back" from the code that reconnects (the steering hub, a websocket that connects) or,
for pages, from `OutageMiddleware`, which probes a service marked down at most once a second
(and answers pages a 503 at once while the database is down).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

log = logging.getLogger(__name__)

REDIS = "redis"
DATABASE = "database"
SERVICE_NAMES = {REDIS: "Redis", DATABASE: "PostgreSQL"}
# What a client should wait before trying again (the Retry-After header).
RETRY_AFTER_S = 5
# A page request probes a service marked down at most this often (per process).
PROBE_EVERY_S = 1.0

MESSAGES = {
    REDIS: (
        "Live features are unavailable for a moment: the server cannot reach Redis. "
        "Try again shortly; nothing you did caused this."
    ),
    DATABASE: (
        "The explorer is unavailable for a moment: the server cannot reach its database. "
        "Try again shortly; nothing you did caused this."
    ),
}


def _outage_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    import django.db.utils
    import kombu.exceptions
    import psycopg
    import redis.exceptions

    redis_types = (
        redis.exceptions.ConnectionError,  # refused, reset, and a pool's wait run out
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,  # a restarted Redis loading its data
        kombu.exceptions.OperationalError,  # the Celery broker (Redis) when sending a task
    )
    database_types = (
        django.db.utils.OperationalError,
        django.db.utils.InterfaceError,  # a connection that died under Django
        psycopg.OperationalError,
        psycopg.InterfaceError,
    )
    return redis_types, database_types


def service_of(exc: BaseException | None) -> str | None:
    """REDIS or DATABASE when `exc` (or an exception it was raised from) says that service
    cannot be reached, else None. A query the database cancelled (statement timeout) is not an
    outage."""
    import psycopg.errors

    redis_types, database_types = _outage_types()
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return None
        if isinstance(exc, redis_types):
            return REDIS
        if isinstance(exc, database_types) and not isinstance(
            exc.__cause__, psycopg.errors.QueryCanceled
        ):
            return DATABASE
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def message(service: str) -> str:
    return MESSAGES[service]


def error_frame(service: str, gen: Any = None) -> dict:
    """The websocket error frame of an outage (DESIGN.md §6)."""
    return {"type": "error", "gen": gen, "message": MESSAGES[service]}


class Tracker:
    """Which services this process saw down, and since when; thread-safe (page requests run in
    threads, sockets on the event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # service -> monotonic time it went down
        self._refused: dict[str, int] = {}  # requests and frames refused meanwhile
        self._probed: dict[str, float] = {}

    def is_down(self, service: str) -> bool:
        return service in self._down

    def down(self, service: str, exc: BaseException | None = None) -> None:
        """Record a failure; logs only when the service was up."""
        with self._lock:
            self._refused[service] = self._refused.get(service, 0) + 1
            if service in self._down:
                return
            self._down[service] = time.monotonic()
            self._probed[service] = time.monotonic()
        reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        log.warning(
            "%s is unreachable%s; what needs it fails fast until it is back",
            SERVICE_NAMES[service],
            reason,
        )

    def up(self, service: str) -> None:
        """Record a success; logs only when the service was down."""
        if service not in self._down:
            return
        with self._lock:
            since = self._down.pop(service, None)
            refused = self._refused.pop(service, 0)
        if since is not None:
            log.info(
                "%s is reachable again after %.1f s (%d requests or frames refused meanwhile)",
                SERVICE_NAMES[service],
                time.monotonic() - since,
                refused,
            )

    def due_probes(self) -> list[str]:
        """Services marked down whose last probe is PROBE_EVERY_S old (and now counts as
        probed): a caller probes them and reports up() or down()."""
        if not self._down:
            return []
        now = time.monotonic()
        due = []
        with self._lock:
            for service in self._down:
                if now - self._probed.get(service, 0.0) >= PROBE_EVERY_S:
                    self._probed[service] = now
                    due.append(service)
        return due

    def reset(self) -> None:
        with self._lock:
            self._down.clear()
            self._refused.clear()
            self._probed.clear()


tracker = Tracker()


def probe(service: str) -> bool:
    """Whether `service` answers now (the /healthz checks); reports the answer to `tracker`.
    Blocking: call it from a thread."""
    from explorer.core import health

    if service == REDIS:
        ok = health.redis_status() == "ok"
    else:
        ok = health.database_status() == "ok"
    if ok:
        tracker.up(service)
    else:
        tracker.down(service)
    return ok


def outage_response(request: HttpRequest, service: str) -> HttpResponse:
    """503 with Retry-After for an unreachable `service`: the API's error shape under /api/,
    else a self-contained page (it renders without the database, the session or Redis)."""
    text = MESSAGES[service]
    if request.path.startswith("/api/"):
        error = {"code": "unavailable", "service": service, "message": text}
        response: HttpResponse = JsonResponse({"error": error}, status=503)
    else:
        response = HttpResponse(loader.render_to_string("503.html", {"message": text}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    # The tracker logs the outage once; no traceback per request.
    response._has_been_logged = True
    return response


class OutageMiddleware:
    """A view that fails because Redis or PostgreSQL is unreachable answers outage_response
    (a 503) instead of a 500. Before each request it probes the services this process saw down
    (at most once a second), so the log says when one is back even when no socket reconnects;
    while the database is still down the request is answered at once, without a view: every
    page needs it, and with a connection pool a request would wait for a connection. While all
    is well it costs one dict lookup."""

    sync_capable = True
    async_capable = True  # no thread hop of its own under ASGI

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        for service in tracker.due_probes():
            probe(service)
        if tracker.is_down(DATABASE):
            return self._refuse(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        for service in tracker.due_probes():
            await sync_to_async(probe, thread_sensitive=False)(service)
        if tracker.is_down(DATABASE):
            return self._refuse(request)
        return await self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest) -> HttpResponse:
        tracker.down(DATABASE)  # counted, not logged again
        return outage_response(request, DATABASE)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        service = service_of(exc)
        if service is None:
            return None
        tracker.down(service, exc)
        return outage_response(request, service)


def websocket_guard(app):
    """ASGI middleware for websockets: when the app fails because Redis or PostgreSQL is
    unreachable (loading the session's user at connect, a channel layer's group_add, its
    receive loop), the client gets the outage's error frame and a close (1011, "try again
    later") instead of a dropped connection, and the log one line instead of a traceback."""

    async def guarded(scope, receive, send):
        accepted = False
        closed = False

        async def tracking_send(message: dict) -> None:
            nonlocal accepted, closed
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close":
                closed = True
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except Exception as exc:
            service = service_of(exc)
            if service is None or closed:
                raise
            tracker.down(service, exc)
            with contextlib.suppress(Exception):  # the client went away meanwhile
                if not accepted:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(error_frame(service))})
                await send({"type": "websocket.close", "code": 1011})

    return guarded
