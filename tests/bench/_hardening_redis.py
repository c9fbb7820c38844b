"""redis_recovery_s: seconds from Redis coming back to ``/healthz`` answering 200 and a steering
round trip working again, through the real stack (part of the ``hardening`` group).

The stack is started here, as tests/bench/steer.py does: the tests' shared embedded PostgreSQL
(var/test, a database of our own), a Redis of our own, ``migrate``, ``add_sae --model demo --sae
demo``, one worker on live.demo and uvicorn. A socket steers once (the worker has its model),
then Redis is killed and, a second later, started again on the same port; the clock starts when
it answers PING. Each probe round is a ``/healthz`` request and, once that is 200, a ``steer`` on
a socket opened before the outage (the same one) with a fresh seed (never the cache); the figure
is the median of ROUNDS outages.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.core.supervisor import celery_worker_argv, web_server_argv
from tests.helpers import wait_http

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3
DOWN_S = 1.0  # how long Redis stays down each round
RECOVERY_TIMEOUT_S = 120.0


@dataclass
class Stack:
    port: int
    redis: Any  # explorer.core.embedded.EmbeddedRedis
    env: dict[str, str]
    log: Path
    web_pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def stack(*, prefix: str = "sfe-bench-redis-", extra_env: dict | None = None) -> Iterator[Stack]:
    import psycopg

    from explorer.core import embedded
    from tests.bench.steer import _wait_worker

    root = Path(tempfile.mkdtemp(prefix=prefix))
    pg = embedded.EmbeddedPostgres(REPO / "var" / "test")
    redis = embedded.EmbeddedRedis(root, port=embedded.free_port())
    embedded.acquire(pg)
    embedded.acquire(redis)
    db = f"bench_redis_{os.getpid()}"
    procs: list[subprocess.Popen] = []
    try:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
            conn.execute(f'CREATE DATABASE "{db}"')
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_URL_FILE"))}
        env.update(
            DJANGO_SETTINGS_MODULE="explorer.settings",
            DATABASE_URL=pg.url(db),
            REDIS_URL=redis.url(),
            SECRET_KEY="bench-" + "k" * 40,
            HTTPS="false",
            DEBUG="false",
            STATIC_ROOT=str(root / "static"),
            STEER_RATE_LIMIT="1000000",
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            HEALTHZ_CACHE_SECONDS="0",
            STEER_START_TIMEOUT_S="120",
            HEALTHZ_REQUIRED_QUEUES="live.*",
            **(extra_env or {}),
        )
        for argv in (
            ["migrate", "--noinput"],
            ["add_sae", "--model", "demo", "--sae", "demo"],
            ["collectstatic", "--noinput", "--verbosity", "0"],
        ):
            subprocess.run(
                [sys.executable, "manage.py", *argv],
                env=env,
                cwd=REPO,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        log = root / "stack.log"
        out = open(log, "ab")  # noqa: SIM115 - closed with the processes
        name = f"bench-redis-{os.getpid()}"
        procs.append(
            subprocess.Popen(
                celery_worker_argv(
                    queues="live.demo",
                    name=f"{name}@%h",
                    extra=("--without-mingle", "--without-gossip", "--loglevel", "WARNING"),
                ),
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        port = embedded.free_port()
        procs.append(
            subprocess.Popen(
                web_server_argv(host="127.0.0.1", port=port),
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, process=procs[1])
        _wait_worker(env, name, procs[0])
        yield Stack(port=port, redis=redis, env=env, log=log, web_pid=procs[1].pid)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        redis.start()  # a round may have left it stopped: release() stops it again
        embedded.release(redis)
        embedded.release(pg)
        shutil.rmtree(root, ignore_errors=True)


def kill_redis(redis: Any) -> None:
    """SIGKILL: connections drop at once, as when the host or the container dies."""
    from explorer.core.embedded import _wait_dead

    pid = redis.pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, 10)


def healthz_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def steer_message(gen: Any, *, seed: int, n: int = 8) -> dict:
    return {
        "type": "steer",
        "gen": gen,
        "model": "demo",
        "prompt": "The jury said that the city",
        "features": [{"sae": "demo", "index": 5, "strength": 6.0, "mode": "add"}],
        "temperature": 0.8,
        "top_p": 0.95,
        "seed": seed,
        "max_new_tokens": n,
    }


async def steer_round_trip(ws: Any, gen: Any, *, seed: int, timeout: float = 30.0) -> dict:
    """Send one `steer` on `ws` and read until both rows are done (returns the last frame) or
    an error frame arrives (returns it)."""
    await ws.send(json.dumps(steer_message(gen, seed=seed)))
    done = 0
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame.get("gen") != gen:
            continue
        if frame["type"] == "error":
            return frame
        if frame["type"] == "done":
            done += 1
            if done == 2:
                return frame


async def _recovery(s: Stack, ws: Any, round_: int) -> float:
    kill_redis(s.redis)
    await asyncio.sleep(DOWN_S)
    await asyncio.to_thread(s.redis.start)
    back = time.monotonic()
    seed = 1000 * (round_ + 1)
    while time.monotonic() - back < RECOVERY_TIMEOUT_S:
        if await asyncio.to_thread(healthz_status, s.url) == 200:
            seed += 1
            frame = await steer_round_trip(ws, f"r{round_}-{seed}", seed=seed)
            if frame["type"] == "done":
                return time.monotonic() - back
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no recovery within {RECOVERY_TIMEOUT_S:g} s; see {s.log}")


async def measure(s: Stack) -> list[float]:
    from websockets.asyncio.client import connect

    figures = []
    async with connect(f"ws://127.0.0.1:{s.port}/ws/steer/", origin=s.url, max_queue=None) as ws:
        warm = await steer_round_trip(ws, "warm", seed=1, timeout=120)
        if warm["type"] != "done":
            raise RuntimeError(f"the stack does not steer: {warm}")
        for round_ in range(ROUNDS):
            figures.append(await _recovery(s, ws, round_))
    return figures


def run() -> list[dict[str, Any]]:
    with stack() as s:
        seconds = asyncio.run(measure(s))
    return [
        {
            "name": "redis_recovery_s",
            "value": round(statistics.median(seconds), 2),
            "unit": "s",
            "target": None,
            "rounds": [round(x, 2) for x in seconds],
        }
    ]


if __name__ == "__main__":
    for figure in run():
        sys.stdout.write(json.dumps(figure) + "\n")
