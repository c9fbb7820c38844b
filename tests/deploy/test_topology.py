"""The production topology rehearsed on one machine (deploy/SCALING.md, "Rehearsal on one
machine"): two web replicas (separate uvicorn processes on two ports), two live workers on the
one `live.demo` queue (threads, as deploy/ runs them) and one batch worker, all on one
PostgreSQL and one Redis given by DATABASE_URL / REDIS_URL, as in deploy/. Real processes on
loopback, real websockets:

- a steering session on replica A survives A being killed: the client reconnects to B and
  resumes (`{"type": "resume", "gen", "after_seq"}`) from the run's replay list, and gets every
  token exactly once;
- a result made through A is served by B's permalink (and B's API);
- killing one live worker mid-generation fails only its own runs (within the watchdog's
  seconds), while the other worker's runs finish and new requests are served.

The figures each run measured are printed (`-s` shows them) for deploy/SCALING.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from explorer.core.embedded import free_port
from explorer.core.supervisor import celery_worker_argv, web_server_argv
from tests.explorer.steering.helpers import steer
from tests.helpers import REPO, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Long enough to be killed mid-way on a busy 2-core machine; the demo model's context is 128.
LONG = 110
LIVE = ("live-1", "live-2")
# The watchdog fails a run whose heartbeat (2 s) expired; checks every 0.25 s.
WORKER_DEATH_NOTICED_S = 10.0


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the process and its group: a crash, an OOM kill, a lost machine."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Topology:
    web: dict[str, str]  # "A"/"B" -> http://127.0.0.1:<port>
    procs: dict[str, Proc]
    redis_url: str
    session_cookie: str
    host: str = field(default_factory=socket.gethostname)

    def node(self, name: str) -> str:
        return f"{name}@{self.host}"


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _serving(web: str) -> dict | None:
    """/healthz of a replica when it reports both live workers and the batch worker."""
    try:
        status, body = _get(web + "/healthz", timeout=5)
    except OSError:
        return None
    report = json.loads(body) if status in (200, 503) else {}
    queues = report.get("queues", {})
    ready = status == 200 and len(queues.get("live.demo", [])) == 2 and queues.get("index")
    return report if ready else None


@pytest.fixture
def topology(service_env, demo_rows, django_user_model, tmp_path) -> Topology:
    import redis
    from django.test import Client

    # The session's Redis, database 1: its own broker queues, so a worker of other tests (on
    # database 0) never takes these tasks; pub/sub channels are per server, and run ids random.
    redis_url = urlsplit(service_env["REDIS_URL"])._replace(path="/1").geturl()
    redis.Redis.from_url(redis_url).flushdb()
    env = {**service_env, "REDIS_URL": redis_url, "HEALTHZ_CACHE_SECONDS": "0"}
    quiet = ("--without-mingle", "--without-gossip", "--loglevel", "INFO")
    threads = ("--pool", "threads", "--concurrency", "8")  # deploy/'s live workers
    procs = {
        name: Proc(
            name,
            celery_worker_argv(queues="live.demo", name=f"{name}@%h", extra=quiet + threads),
            env,
            tmp_path / f"{name}.log",
        )
        for name in LIVE
    }
    procs["batch"] = Proc(
        "batch",
        celery_worker_argv(queues="index,explain", name="batch@%h", extra=quiet),
        env,
        tmp_path / "batch.log",
    )
    web = {}
    for replica in ("A", "B"):
        port = free_port()
        web[replica] = f"http://127.0.0.1:{port}"
        procs[replica] = Proc(
            replica, web_server_argv(host="127.0.0.1", port=port), env, tmp_path / f"{replica}.log"
        )
    for proc in procs.values():
        proc.start()
    try:
        for url in web.values():
            wait_until(
                lambda url=url: _serving(url),
                timeout=180,
                interval=0.5,
                message=lambda: f"the topology did not come up; logs in {tmp_path}",
            )
        # Each live worker warms its own copy of the model at start (its own direct queue).
        for name in LIVE:
            wait_until(
                lambda name=name: "warm_up: demo loaded" in procs[name].log.read_text(),
                timeout=180,
                interval=0.5,
                message=f"{name} did not warm up; see {procs[name].log}",
            )
        alice = django_user_model.objects.create_user("alice", "alice@example.org", "pw-alice-1")
        client = Client()
        client.force_login(alice)  # a session row in PostgreSQL: every replica reads it
        yield Topology(
            web=web,
            procs=procs,
            redis_url=redis_url,
            session_cookie=client.cookies["sessionid"].value,
        )
    finally:
        for proc in reversed(procs.values()):
            proc.stop()


# ---------------------------------------------------------------------------- websocket side


class Stream:
    """One client's view of one generation: its frames as they came, over any sockets."""

    def __init__(self, gen: int) -> None:
        self.gen = gen
        self.frames: list[tuple[float, dict]] = []

    @property
    def last_seq(self) -> int:
        return max((f["seq"] for _, f in self.frames if "seq" in f), default=0)

    def ended(self) -> bool:
        kinds = [f["type"] for _, f in self.frames]
        return "error" in kinds or kinds.count("done") == 2

    def done(self) -> dict[str, dict]:
        return {f["row"]: f for _, f in self.frames if f["type"] == "done"}

    def errors(self) -> list[str]:
        return [f["message"] for _, f in self.frames if f["type"] == "error"]

    def check_complete(self) -> int:
        """Every frame exactly once (seq 1..n, none missing, none twice) and each row's deltas
        adding up to its done text; the number of tokens of both rows."""
        assert not self.errors(), self.errors()
        seqs = [f["seq"] for _, f in self.frames]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        done = self.done()
        assert set(done) == {"default", "steered"}, self.frames[-3:]
        for row, final in done.items():
            parts = [f for _, f in self.frames if f.get("row") == row and f["type"] == "delta"]
            assert "".join(f["text"] for f in parts) == final["text"], (row, parts, final)
        return sum(len(f["tokens"]) for f in done.values())


async def _connect(top: Topology, replica: str):
    from websockets.asyncio.client import connect

    web = top.web[replica]
    return await connect(
        web.replace("http://", "ws://") + "/ws/steer/",
        origin=web,
        additional_headers={"Cookie": f"sessionid={top.session_cookie}"},
    )


async def _read(ws, stream: Stream, *, until, timeout: float) -> None:
    """Frames of `stream.gen` from `ws` until `until(stream)` or the stream ended."""
    deadline = time.monotonic() + timeout
    while not (until(stream) or stream.ended()):
        left = deadline - time.monotonic()
        assert left > 0, f"gen {stream.gen}: nothing more within {timeout}s: {stream.frames[-3:]}"
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if frame.get("gen") == stream.gen:
            stream.frames.append((time.monotonic(), frame))


def _started(stream: Stream) -> bool:
    return any(f["type"] == "delta" and f["row"] == "steered" for _, f in stream.frames)


def _permalink_served(web: str, result: str) -> dict:
    """B's permalink page and B's API for `result` (done goes out a few ms before the row)."""

    def served() -> dict | None:
        status, body = _get(f"{web}/api/v1/steering/results/{result}")
        return json.loads(body) if status == 200 else None

    stored = wait_until(served, timeout=15, interval=0.1, message=f"result {result} not on {web}")
    status, page = _get(f"{web}/steer/{result}/")
    assert status == 200 and result.encode() in page
    return stored


# ---------------------------------------------------------------------------- the rehearsal


def test_a_session_survives_its_replica_and_a_live_worker_dying(topology):
    top = topology
    figures = asyncio.run(_rehearse(top))
    print("\ntopology rehearsal:", json.dumps(figures, indent=1))  # the figures for SCALING.md


async def _rehearse(top: Topology) -> dict:
    figures: dict = {}

    # A result made through A is served by B's permalink.
    ws_a = await _connect(top, "A")
    made = Stream(gen=1)
    await ws_a.send(json.dumps(steer(1, prompt="The harbour master", max_new_tokens=8)))
    await _read(ws_a, made, until=lambda s: False, timeout=120)
    made.check_complete()
    result = made.done()["steered"]["result"]
    stored = _permalink_served(top.web["B"], result)
    assert stored["steered_text"] == made.done()["steered"]["text"]

    # A steering session on A survives A being killed: reconnect to B, resume after the last
    # frame seen; no frame is lost or repeated.
    session = Stream(gen=2)
    await ws_a.send(json.dumps(steer(2, prompt="The mayor said", seed=11, max_new_tokens=LONG)))
    await _read(ws_a, session, until=_started, timeout=120)
    seen_on_a = session.last_seq
    top.procs["A"].kill()
    killed = time.monotonic()
    ws_b = await _connect(top, "B")
    await ws_b.send(json.dumps({"type": "resume", "gen": 2, "after_seq": seen_on_a}))
    await _read(ws_b, session, until=lambda s: s.last_seq > seen_on_a, timeout=30)
    first_on_b = session.frames[-1][0]
    await _read(ws_b, session, until=lambda s: False, timeout=120)
    tokens = session.check_complete()
    live_after_resume = sum(1 for t, f in session.frames if t > first_on_b + 0.01)
    figures["replica_kill"] = {
        "frames_before_kill": seen_on_a,
        "frames_total": session.last_seq,
        "frames_arriving_live_after_resume": live_after_resume,
        "tokens": tokens,
        "tokens_lost": 0,
        "tokens_repeated": 0,
        "kill_to_first_frame_on_B_s": round(first_on_b - killed, 3),
    }
    await ws_a.close()
    _permalink_served(top.web["B"], session.done()["steered"]["result"])

    figures["live_worker_kill"] = await _kill_a_live_worker(top, ws_b)
    await ws_b.close()
    return figures


async def _kill_a_live_worker(top: Topology, ws_b) -> dict:
    """Long runs through B until each live worker holds one (Celery's per-worker task counts
    say which took it), then SIGKILL one worker: its run fails fast, the other's finishes, and
    a new request is served."""
    from celery import Celery

    inspect = Celery(broker=top.redis_url).control.inspect(
        timeout=1.0, destination=[top.node(n) for n in LIVE]
    )

    def taken() -> dict[str, int]:
        stats = inspect.stats() or {}
        return {n: stats[top.node(n)]["total"].get("workers.live.steer", 0) for n in LIVE}

    sockets = []  # one per run: a new steer on a socket would supersede its run
    holder: dict[str, tuple[object, Stream]] = {}
    counts = await asyncio.to_thread(taken)
    for gen in range(10, 20):
        ws = await _connect(top, "B")
        sockets.append(ws)
        stream = Stream(gen)
        await ws.send(json.dumps(steer(gen, prompt="The river", seed=gen, max_new_tokens=LONG)))
        await _read(ws, stream, until=_started, timeout=120)
        now = await asyncio.to_thread(taken)
        worker = next(n for n in LIVE if now[n] > counts[n])
        counts = now
        if worker in holder:  # that worker has one already: let this run go
            await ws.send(json.dumps({"type": "cancel", "gen": gen}))
            continue
        holder[worker] = (ws, stream)
        if len(holder) == 2:
            break
    assert len(holder) == 2, f"every run went to one worker: {counts}"

    victim, survivor = LIVE
    victim_ws, victim_run = holder[victim]
    survivor_ws, survivor_run = holder[survivor]
    assert not victim_run.ended() and not survivor_run.ended(), "runs ended before the kill"
    top.procs[victim].kill()
    killed = time.monotonic()
    await asyncio.gather(
        _read(victim_ws, victim_run, until=lambda s: False, timeout=WORKER_DEATH_NOTICED_S),
        _read(survivor_ws, survivor_run, until=lambda s: False, timeout=120),
    )
    assert victim_run.errors() == ["the worker stopped while generating; try again"], [
        (round(t - killed, 3), f["type"], f["seq"]) for t, f in victim_run.frames
    ]
    noticed = victim_run.frames[-1][0] - killed
    survivor_tokens = survivor_run.check_complete()

    after = Stream(gen=30)
    asked = time.monotonic()
    await survivor_ws.send(json.dumps(steer(30, prompt="After the storm", max_new_tokens=LONG)))
    await _read(survivor_ws, after, until=lambda s: False, timeout=120)
    after.check_complete()
    served_in = after.frames[-1][0] - asked
    for ws in sockets:
        await ws.close()
    report = json.loads(_get(top.web["B"] + "/healthz")[1])
    assert report["queues"]["live.demo"] == [top.node(survivor)]
    return {
        "victim_run_error_after_kill_s": round(noticed, 3),
        "survivor_run_tokens": survivor_tokens,
        "new_request_after_kill_s": round(served_in, 3),
        "healthz_after": report["status"],
    }
