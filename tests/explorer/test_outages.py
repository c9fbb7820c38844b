"""Redis and PostgreSQL going away and coming back, under a live steering socket and page loads,
through the real stack (explorer/core/outages.py says what users and the log get).

Each test starts uvicorn and a Celery worker on a Redis of its own (so stopping it touches
nothing else of the session) and the session's test database; the PostgreSQL test stops the
session's embedded server itself, and starts it again before it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from explorer.core.supervisor import celery_worker_argv, web_server_argv
from tests.helpers import REPO, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Pages of every kind: each works or answers the 503 page, never a 500.
PAGES = [
    "/",
    "/search/?q=bank",
    "/search/?q=%235",
    "/demo/demo/",
    "/demo/steer/",
    "/lists/",
    "/accounts/login/",
    "/api/v1/models",
    "/api/v1/search?q=bank",
    "/api/v1/models/demo/saes/demo/features?limit=5",
]


@dataclass
class Stack:
    url: str
    redis: object  # explorer.core.embedded.EmbeddedRedis
    web_pid: int
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/steer/"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def own_stack(service_env: dict, root: Path, **env: str) -> Iterator[Stack]:
    """uvicorn and a worker on live.demo, both on a Redis of their own; ready once /healthz
    says the worker consumes its queue."""
    from explorer.core import embedded

    redis = embedded.EmbeddedRedis(root, port=embedded.free_port())
    redis.start()
    env = {
        **service_env,
        "REDIS_URL": redis.url(),
        "HEALTHZ_REQUIRED_QUEUES": "live.*",
        "HEALTHZ_CACHE_SECONDS": "0",
        "STEER_RATE_LIMIT": "1000000",
        "STEER_MAX_IN_FLIGHT": "1000000",  # the sockets of these tests share one address
        "LOG_LEVEL": "INFO",
        **env,
    }
    port = embedded.free_port()
    procs: list[subprocess.Popen] = []
    web_log, worker_log = root / "web.log", root / "worker.log"
    try:
        for argv, log in (
            (
                celery_worker_argv(
                    queues="live.demo",
                    name=f"outage-{os.getpid()}@%h",
                    extra=("--without-mingle", "--without-gossip", "--loglevel", "INFO"),
                ),
                worker_log,
            ),
            (web_server_argv(host="127.0.0.1", port=port), web_log),
        ):
            with open(log, "ab") as out:
                procs.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        stack = Stack(
            url=f"http://127.0.0.1:{port}", redis=redis, web_pid=procs[1].pid, log=web_log
        )

        def ready() -> bool:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[:4]} exited; see {root}")
            return status(stack.url + "/healthz") == 200

        wait_until(ready, timeout=240, interval=0.5, message=f"stack not ready; see {root}")
        yield stack
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        redis.stop()


def kill(redis) -> None:
    """SIGKILL: every connection drops at once, as when Redis's host dies."""
    from explorer.core.embedded import _wait_dead

    pid = redis.pid()
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid, 10)


def fetch(url: str) -> tuple[int, Message, bytes]:
    """(status, headers (case-insensitive), body)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def status(url: str) -> int:
    try:
        return fetch(url)[0]
    except OSError:
        return 0


def steer(gen, *, seed: int = 0, n: int = 6, prompt: str = "The city council") -> dict:
    return {
        "type": "steer",
        "gen": gen,
        "model": "demo",
        "prompt": prompt,
        "features": [{"sae": "demo", "index": 5, "strength": 4.0, "mode": "add"}],
        "temperature": 0.0,
        "seed": seed,
        "max_new_tokens": n,
    }


def until_end(ws, gen, timeout: float = 120.0) -> list[dict]:
    """Frames of `gen` until both rows are done or an error frame (the last one)."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame.get("gen") != gen:
            continue
        frames.append(frame)
        if frame["type"] == "error" or sum(f["type"] == "done" for f in frames) == 2:
            return frames


def steers_again(ws, first_gen: int, timeout: float = 120.0) -> None:
    """Steer on `ws` until a generation finishes (the worker reconnects to its broker a few
    seconds after Redis is back); fails after `timeout`."""
    gens = iter(range(first_gen, first_gen + 10_000))

    def finished() -> bool:
        gen = next(gens)
        ws.send(json.dumps(steer(gen, seed=gen)))
        return until_end(ws, gen)[-1]["type"] == "done"

    wait_until(finished, timeout=timeout, interval=0.5, message="steering did not come back")


def assert_pages_work_or_answer_503(url: str, service: str) -> None:
    for page in PAGES:
        code, headers, body = fetch(url + page)
        assert code in (200, 503), (page, code, body[:300])
        if code == 503:
            assert (headers.get("Retry-After") or "").isdigit(), page
            if page.startswith("/api/"):
                error = json.loads(body)["error"]
                assert (error["code"], error["service"]) == ("unavailable", service)
            else:
                assert b"temporarily unavailable" in body, page


def test_redis_going_away_under_a_live_socket_and_page_loads_and_coming_back(
    demo_rows, service_env, tmp_path
):
    from websockets.sync.client import connect

    with own_stack(service_env, tmp_path) as stack, connect(stack.ws_url, origin=stack.url) as ws:
        ws.send(json.dumps(steer("warm")))
        assert until_end(ws, "warm")[-1]["type"] == "done"
        # A long generation, cut off by Redis dying after its first delta.
        ws.send(json.dumps(steer(1, n=110, prompt="It")))
        while json.loads(ws.recv(timeout=60))["type"] != "delta":
            pass
        kill(stack.redis)
        ended = until_end(ws, 1, timeout=15)[-1]
        assert ended["type"] == "error" and "Redis" in ended["message"], ended

        # The socket stays open: a request now is refused with the same words.
        ws.send(json.dumps(steer(2)))
        assert "Redis" in until_end(ws, 2, timeout=15)[-1]["message"]
        # A new socket is told at once.
        with connect(stack.ws_url, origin=stack.url) as fresh:
            frame = json.loads(fresh.recv(timeout=15))
            assert frame["type"] == "error" and "Redis" in frame["message"], frame
        assert_pages_work_or_answer_503(stack.url, "redis")
        assert status(stack.url + "/healthz") == 503
        time.sleep(2)  # several watchdog and reconnect periods

        stack.redis.start()
        wait_until(lambda: status(stack.url + "/healthz") == 200, timeout=120, interval=0.2)
        steers_again(ws, 100)
        for page in PAGES:
            assert status(stack.url + page) == 200, page
        log = stack.log_text()

    # One line when Redis went and one when it came back; no traceback at all.
    assert "Traceback" not in log, log[-3000:]
    assert log.count("Redis is unreachable") == 1, log[-3000:]
    assert log.count("Redis is reachable again") == 1, log[-3000:]


def test_postgres_going_away_under_a_socket_and_page_loads_and_coming_back(
    demo_rows, service_env, tmp_path
):
    from django.db import connections
    from websockets.sync.client import connect

    from explorer.core import embedded
    from tests.fixtures.services import TEST_PG_ROOT

    postgres = embedded.EmbeddedPostgres(TEST_PG_ROOT)
    with own_stack(service_env, tmp_path) as stack, connect(stack.ws_url, origin=stack.url) as ws:
        ws.send(json.dumps(steer("warm")))
        assert until_end(ws, "warm")[-1]["type"] == "done"
        postgres.stop()
        try:
            assert_pages_work_or_answer_503(stack.url, "database")
            assert status(stack.url + "/") == 503
            assert status(stack.url + "/healthz") == 503
            # A socket that connects now is told (the process saw the database down).
            with connect(stack.ws_url, origin=stack.url) as fresh:
                frame = json.loads(fresh.recv(timeout=15))
                assert frame["type"] == "error" and "database" in frame["message"], frame
        finally:
            postgres.start()
            connections.close_all()  # this process's connection died with the server
        wait_until(lambda: status(stack.url + "/healthz") == 200, timeout=120, interval=0.2)
        for page in PAGES:
            assert status(stack.url + page) == 200, page
        steers_again(ws, 100)
        log = stack.log_text()

    assert "Traceback" not in log, log[-3000:]
    assert log.count("PostgreSQL is unreachable") == 1, log[-3000:]
    assert log.count("PostgreSQL is reachable again") == 1, log[-3000:]


def _redis_connections(stack: Stack) -> tuple[int, int]:
    """(the web process's connections to its Redis, those of them named by its pools)."""
    import psutil
    import redis

    from explorer.core.redis_clients import CLIENT_NAME

    port = stack.redis.port
    ours = {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process(stack.web_pid).net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
    }
    with redis.Redis.from_url(stack.redis.url()) as client:
        named = sum(
            1 for c in client.client_list() if c["addr"] in ours and c["name"] == CLIENT_NAME
        )
    return len(ours), named


async def _steer_on_many_sockets(stack: Stack, sockets: int) -> list[dict]:
    """Open `sockets` sockets at once, steer once on each (distinct seeds, so none is served
    from the cache) and return each one's last frame."""
    from websockets.asyncio.client import connect

    async def one(i: int) -> dict:
        async with connect(stack.ws_url, origin=stack.url, open_timeout=60) as ws:
            await ws.send(json.dumps(steer(i, seed=10_000 + i, n=2)))
            done = 0
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 180))
                done += frame["type"] == "done"
                if frame["type"] == "error" or done == 2:
                    return frame

    return await asyncio.gather(*(one(i) for i in range(sockets)))


def test_200_steering_sockets_share_one_bounded_redis_pool(demo_rows, service_env, tmp_path):
    import threading

    bound = 10
    with own_stack(service_env, tmp_path, REDIS_MAX_CONNECTIONS=str(bound)) as stack:
        peak, stop = [0, 0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                peak[:] = map(max, peak, _redis_connections(stack))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            last = asyncio.run(_steer_on_many_sockets(stack, 200))
        finally:
            stop.set()
            sampler.join()
        log = stack.log_text()

    outages = [f for f in last if f["type"] == "error" and "unavailable" in f["message"]]
    assert outages == [], outages[:3]
    assert sum(f["type"] == "done" for f in last) >= 190, [f for f in last if f["type"] != "done"]
    # The process's one steering pool (its hub's pub/sub connection included) and the Celery
    # client's broker pool (broker_pool_limit, 10), nothing per socket.
    total, steering = peak
    assert 0 < steering <= bound, peak
    assert total <= steering + 20, peak
    assert "MaxConnectionsError" not in log and "Traceback" not in log, log[-3000:]
