"""Live steering through the whole stack: a websocket client on loopback -> uvicorn
(SteerConsumer) -> Redis -> a Celery worker on live.demo (the engine's batched decoding) ->
frames back through the Redis channel layer.

The stack is started here: the tests' shared embedded PostgreSQL (var/test, a database of our
own), a Redis of our own, `migrate`, `add_sae --model demo --sae demo`, one worker
(concurrency 1, OMP_NUM_THREADS=1 like the engine benches' one torch thread) and uvicorn.

- steer_ttft_overhead_ms_p50/_p95: `steer` sent -> first steered delta received, minus the
  engine's own time to first token for the same request (in this process, one torch thread).
- steer_concurrency_gain_16: aggregate tokens/s of 16 concurrent sessions ÷ one session
  (median of five back-to-back pairs), greedy like engine_steer's batch_gain_8;
  steer_engine_gain_16 is the same ratio for the engine alone (BatchScheduler in this process),
  the ceiling on this machine at that moment. The `_sampled` pair is the same at temperature
  0.8 / top-p 0.95: the engine samples row by row (a softmax and a sort of the vocabulary per
  row per step), which does not batch, so both gains are far lower there.
- steer_supersede_ms_p50: a new `steer` sent -> the last delta of the old generation received
  (0 when none arrives after it: the worker publishes nothing more for a run once it has read
  its cancel flag, so a delta arrives only when a tick went out before that); one decode step
  (steer_decode_step_ms) + 20 ms is the target.
- steer_lost_or_reordered: over N generations on 8 concurrent sockets, frames out of order or
  missing, plus rows whose streamed text differs from their `done` text (counted in tokens).
- http_steer_overhead_ms_p50: `POST /api/v1/steer` with `Accept: text/event-stream` sent -> first
  steered delta event read, minus the websocket's time to its first steered delta for the same
  request, in interleaved pairs (each request with its own seed, so the cache never answers);
  the HTTP client keeps its connection, as a notebook's loop does.

`python -m tests.bench.steer http` measures only the last figure (a shorter run while working
on the HTTP endpoint); `make bench BENCH=steer` measures them all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from explorer.core.supervisor import celery_worker_argv, web_server_argv
from tests.helpers import wait_http, wait_until

REPO = Path(__file__).resolve().parents[2]
GENERATIONS = 1000  # for steer_lost_or_reordered (also in its JSON line)
PROMPT = "The jury said that the city"


# --------------------------------------------------------------------------- the stack


def _wait_worker(env: dict, name: str, process: subprocess.Popen, timeout: float = 120) -> None:
    script = (
        "import sys; from workers.celery import app; "
        f"r = app.control.ping(timeout=1) or []; sys.exit(0 if any({name!r} in next(iter(x)) "
        "for x in r) else 1)"
    )

    def answers_ping() -> bool:
        if process.poll() is not None:
            raise RuntimeError("worker exited")
        return (
            subprocess.run(
                [sys.executable, "-c", script], check=False, env=env, cwd=REPO, capture_output=True
            ).returncode
            == 0
        )

    wait_until(answers_ping, timeout=timeout, interval=0.5, message="worker did not answer a ping")


@contextmanager
def stack(**settings: str):
    """The stack, its port yielded; `settings` are environment overrides for its processes."""
    import psycopg

    from explorer.core import embedded

    root = Path(tempfile.mkdtemp(prefix="sfe-bench-steer-"))
    pg = embedded.EmbeddedPostgres(REPO / "var" / "test")
    redis = embedded.EmbeddedRedis(root, port=embedded.free_port())
    embedded.acquire(pg)
    embedded.acquire(redis)
    db = f"bench_steer_{os.getpid()}"
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
            # Every session here is one client (one address): not capped.
            STEER_MAX_IN_FLIGHT="1000000",
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="WARNING",
        )
        env.update(settings)
        for argv in (["migrate", "--noinput"], ["add_sae", "--model", "demo", "--sae", "demo"]):
            subprocess.run(
                [sys.executable, "manage.py", *argv],
                env=env,
                cwd=REPO,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        log = open(root / "stack.log", "ab")  # noqa: SIM115 - closed with the processes
        name = f"bench-steer-{os.getpid()}"
        procs.append(
            subprocess.Popen(
                celery_worker_argv(
                    queues="live.demo",
                    name=f"{name}@%h",
                    extra=("--without-mingle", "--without-gossip", "--loglevel", "WARNING"),
                ),
                env=env,
                cwd=REPO,
                stdout=log,
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
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, process=procs[1])
        _wait_worker(env, name, procs[0])
        yield port
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        embedded.release(redis)
        embedded.release(pg)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the client


def message(
    gen, *, seed: int, n: int, prompt: str = PROMPT, strength: float = 6.0, temperature: float = 0.8
) -> dict:
    return {
        "type": "steer",
        "gen": gen,
        "model": "demo",
        "prompt": prompt,
        "features": [{"sae": "demo", "index": 5, "strength": strength, "mode": "add"}],
        "temperature": temperature,
        "top_p": 0.95,
        "seed": seed,
        "max_new_tokens": n,
    }


class Session:
    """One websocket; frames of every gen are kept with their arrival times. `address`: the
    loopback address to connect from (the server tells clients apart by it)."""

    def __init__(self, port: int, address: str | None = None):
        self.port = port
        self.address = address
        self.frames: dict = {}
        self.done: dict = {}

    async def __aenter__(self):
        from websockets.asyncio.client import connect

        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/steer/",
            origin=f"http://127.0.0.1:{self.port}",
            max_queue=None,
            **({"local_addr": (self.address, 0)} if self.address else {}),
        )
        self.reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc):
        self.reader.cancel()
        await self.ws.close()

    async def _read(self):
        async for raw in self.ws:
            frame = json.loads(raw)
            now = time.perf_counter()
            gen = frame.get("gen")
            self.frames.setdefault(gen, []).append((now, frame))
            ended = frame["type"] == "error" or (
                frame["type"] == "done"
                and sum(f["type"] == "done" for _, f in self.frames[gen]) == 2
            )
            if ended:
                self.done.setdefault(gen, asyncio.Event()).set()

    async def send(self, msg: dict) -> float:
        self.done.setdefault(msg["gen"], asyncio.Event())
        t = time.perf_counter()
        await self.ws.send(json.dumps(msg))
        return t

    async def finished(self, gen, timeout: float = 120) -> list[tuple[float, dict]]:
        await asyncio.wait_for(self.done.setdefault(gen, asyncio.Event()).wait(), timeout)
        frames = self.frames[gen]
        errors = [f for _, f in frames if f["type"] == "error"]
        if errors:
            raise RuntimeError(f"gen {gen}: {errors[0]['message']}")
        return frames


def _tokens(frames) -> int:
    return sum(len(f["token_ids"]) for _, f in frames if f["type"] == "done")


# --------------------------------------------------------------------------- phases


async def ttft(port: int, att, n: int = 30) -> list[float]:
    from tests.bench._engine import one_torch_thread
    from workers.engine.generation import generate
    from workers.engine.interventions import Intervention, SteerSpec

    overheads = []
    async with Session(port) as s:
        for i in range(-3, n):  # three warm-up requests (the worker loads the model)
            msg = message(f"t{i}", seed=1000 + i, n=4)
            sent = await s.send(msg)
            frames = await s.finished(msg["gen"])
            first = next(t for t, f in frames if f["type"] == "delta" and f["row"] == "steered")
            spec = SteerSpec(
                (Intervention(5, 6.0),),
                temperature=0.8,
                top_p=0.95,
                seed=msg["seed"],
                max_new_tokens=4,
            )
            seen: list[float] = []

            def on_token(row: str, _token: int, _text: str, seen: list[float] = seen) -> None:
                if row == "steered" and not seen:
                    seen.append(time.perf_counter())

            with one_torch_thread():
                t0 = time.perf_counter()
                generate(att, PROMPT, spec, on_token=on_token)
            if i >= 0:
                overheads.append((first - sent - (seen[0] - t0)) * 1000)
    return overheads


async def concurrency(
    port: int, *, temperature: float, sessions: int = 16, n: int = 48, pairs: int = 5
) -> float:
    """Median over `pairs` of (16 concurrent sessions' tokens/s ÷ one session's), each pair
    measured back to back: this shared machine's load changes by 2-3x within a minute.
    Requests differ in strength by a hair, so none is served from the cache."""
    tweak = iter(range(10**6))

    async def one(tag: str, s: Session) -> int:
        k = next(tweak)
        msg = message(tag, seed=5000 + k, n=n, temperature=temperature, strength=6.0 + k * 1e-4)
        await s.send(msg)
        return _tokens(await s.finished(msg["gen"]))

    ratios = []
    socks = [Session(port) for _ in range(sessions)]
    for s in socks:
        await s.__aenter__()
    try:
        for p in range(pairs):
            t0 = time.perf_counter()
            tokens = 0
            for k in range(2):  # one session, twice
                tokens += await one(f"c{temperature}-{p}-1-{k}", socks[0])
            single = tokens / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            counts = await asyncio.gather(
                *(one(f"c{temperature}-{p}-n-{k}", s) for k, s in enumerate(socks))
            )
            ratios.append(sum(counts) / (time.perf_counter() - t0) / single)
    finally:
        for s in socks:
            await s.__aexit__()
    return statistics.median(ratios)


async def supersede(port: int, reps: int = 20) -> list[float]:
    out = []
    async with Session(port) as s:
        for r in range(reps):
            old, new = f"sa{r}", f"sb{r}"
            await s.send(
                message(
                    old, seed=7000 + r, n=100, prompt="It", temperature=0.0, strength=float(r + 1)
                )
            )
            while not any(f["type"] == "delta" for _, f in s.frames.get(old, [])):
                await asyncio.sleep(0.001)
            sent = await s.send(message(new, seed=8000 + r, n=4))
            await s.finished(new)
            await asyncio.sleep(0.3)
            late = [t for t, f in s.frames[old] if f["type"] == "delta" and t > sent]
            if any(f["type"] == "done" for _, f in s.frames[old]):
                raise RuntimeError(f"superseded generation {old} completed")
            out.append(max(0.0, (max(late) - sent) * 1000) if late else 0.0)
    return out


def _check(frames) -> int:
    """Problems in one generation: seq gaps/duplicates/reorders, plus tokens of rows whose
    deltas do not add up to their done text."""
    seqs = [f["seq"] for _, f in frames]
    bad = sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1)
    bad += 0 if seqs and seqs[0] == 1 else 1
    for row in ("default", "steered"):
        done = next(f for _, f in frames if f["type"] == "done" and f["row"] == row)
        streamed = "".join(f["text"] for _, f in frames if f["type"] == "delta" and f["row"] == row)
        if streamed != done["text"]:
            bad += max(1, len(done["token_ids"]))
    return bad


async def lost_or_reordered(port: int, generations: int, sockets: int = 8) -> int:
    async def worker(k: int, s: Session) -> int:
        bad = 0
        for i in range(k, generations, sockets):
            msg = message(f"l{i}", seed=20000 + i, n=8)
            await s.send(msg)
            bad += _check(await s.finished(msg["gen"]))
        return bad

    socks = [Session(port) for _ in range(sockets)]
    for s in socks:
        await s.__aenter__()
    try:
        return sum(await asyncio.gather(*(worker(k, s) for k, s in enumerate(socks))))
    finally:
        for s in socks:
            await s.__aexit__()


async def http_overhead(port: int, n: int = 40) -> tuple[list[float], list[float]]:
    """(HTTP - websocket time to first steered token, websocket's) in ms, per pair."""
    import httpx

    async def over_http(client: httpx.AsyncClient, msg: dict) -> float:
        body = {k: v for k, v in msg.items() if k not in ("type", "gen")}
        sent = time.perf_counter()
        first = None
        async with client.stream(
            "POST", "/api/v1/steer", json=body, headers={"Accept": "text/event-stream"}
        ) as r:
            event = ""
            async for line in r.aiter_lines():  # to the end, so the connection is reused
                if line.startswith("event: "):
                    event = line[7:]
                elif (
                    first is None
                    and event == "delta"
                    and line.startswith("data: ")
                    and json.loads(line[6:])["row"] == "steered"
                ):
                    first = time.perf_counter()
        if r.status_code != 200 or first is None:
            raise RuntimeError(f"POST /api/v1/steer answered {r.status_code}, no steered delta")
        return first - sent

    diffs, ws_times = [], []
    base = f"http://127.0.0.1:{port}"
    async with Session(port) as s, httpx.AsyncClient(base_url=base, timeout=120) as client:
        for i in range(-3, n):  # three warm-up pairs
            msg = message(f"h{i}", seed=30000 + 2 * i, n=4)
            sent = await s.send(msg)
            frames = await s.finished(msg["gen"])
            first = next(t for t, f in frames if f["type"] == "delta" and f["row"] == "steered")
            http = await over_http(client, message(None, seed=30001 + 2 * i, n=4))
            if i >= 0:
                diffs.append((http - (first - sent)) * 1000)
                ws_times.append((first - sent) * 1000)
    return diffs, ws_times


def http_figures(diffs: list[float], ws_times: list[float]) -> list[dict]:
    return [
        {
            "name": "http_steer_overhead_ms_p50",
            "value": round(statistics.median(diffs), 1),
            "unit": "ms",
            "target": "<= 10",
            "websocket_ttft_ms_p50": round(statistics.median(ws_times), 1),
            "repeats": len(diffs),
        }
    ]


def decode_step_ms(att, steps: int = 48) -> float:
    from tests.bench._engine import one_torch_thread
    from workers.engine.generation import prepare_job
    from workers.engine.interventions import Intervention, SteerSpec
    from workers.engine.scheduler import run_job

    spec = SteerSpec((Intervention(5, 6.0),), max_new_tokens=steps, seed=0)
    times = []
    with one_torch_thread():
        for _ in range(5):
            t0 = time.perf_counter()
            run_job(att.lm, prepare_job(att, PROMPT, spec), stop_ids=())
            times.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(times)


def engine_gain(
    att, *, temperature: float, sessions: int = 16, n: int = 48, pairs: int = 5
) -> float:
    """The engine's own gain for the same load, in this process (one torch thread): the
    ceiling of steer_concurrency_gain_16 on this machine at this moment."""
    from tests.bench._engine import one_torch_thread
    from workers.engine.generation import submit
    from workers.engine.interventions import Intervention, SteerSpec
    from workers.engine.scheduler import BatchScheduler

    def rate(jobs: int, seed: int) -> float:
        with BatchScheduler(att.lm, max_rows=64) as scheduler:
            t0 = time.perf_counter()
            handles = [
                submit(
                    scheduler,
                    att,
                    PROMPT,
                    SteerSpec(
                        (Intervention(5, 6.0 + k * 1e-4),),
                        temperature=temperature,
                        top_p=0.95,
                        seed=seed + k,
                        max_new_tokens=n,
                    ),
                )
                for k in range(jobs)
            ]
            results = [h.result() for h in handles]
            took = time.perf_counter() - t0
        return sum(len(r.default.tokens) + len(r.steered.tokens) for r in results) / took

    with one_torch_thread():
        return statistics.median(
            rate(sessions, 100 * p) / rate(1, 100 * p + 50) for p in range(pairs)
        )


def run() -> list[dict]:
    from tests.bench._engine import demo_attached

    att = demo_attached()
    if att is None:
        raise RuntimeError("the demo checkpoint is missing")

    async def phases(port: int):
        over = await ttft(port, att)
        http = await http_overhead(port)
        gain = await concurrency(port, temperature=0.0)
        sampled = await concurrency(port, temperature=0.8)
        sup = await supersede(port)
        lost = await lost_or_reordered(port, GENERATIONS)
        return over, http, gain, sampled, sup, lost

    with stack() as port:
        over, http, gain, sampled, sup, lost = asyncio.run(phases(port))
    step = decode_step_ms(att)
    ceiling = engine_gain(att, temperature=0.0)
    ceiling_sampled = engine_gain(att, temperature=0.8)
    q = statistics.quantiles(over, n=20)
    return [
        {
            "name": "steer_ttft_overhead_ms_p50",
            "value": round(statistics.median(over), 1),
            "unit": "ms",
            "target": "<= 25",
        },
        {
            "name": "steer_ttft_overhead_ms_p95",
            "value": round(q[18], 1),
            "unit": "ms",
            "target": None,
        },
        {
            "name": "steer_concurrency_gain_16",
            "value": round(gain, 2),
            "unit": "x",
            "target": ">= 3.0",
        },
        {"name": "steer_engine_gain_16", "value": round(ceiling, 2), "unit": "x", "target": None},
        {
            "name": "steer_concurrency_gain_16_sampled",
            "value": round(sampled, 2),
            "unit": "x",
            "target": None,
        },
        {
            "name": "steer_engine_gain_16_sampled",
            "value": round(ceiling_sampled, 2),
            "unit": "x",
            "target": None,
        },
        {
            "name": "steer_supersede_ms_p50",
            "value": round(statistics.median(sup), 1),
            "unit": "ms",
            "target": f"<= {step + 20:.1f} (one decode step {step:.1f} ms + 20)",
        },
        {
            "name": "steer_supersede_ms_max",
            "value": round(max(sup), 1),
            "unit": "ms",
            "target": None,
            "repeats": len(sup),
        },
        {"name": "steer_decode_step_ms", "value": round(step, 2), "unit": "ms", "target": None},
        {
            "name": "steer_lost_or_reordered",
            "value": lost,
            "unit": "tokens",
            "target": "== 0",
            "generations": GENERATIONS,
        },
        *http_figures(*http),
    ]


def run_http() -> list[dict]:
    """Only http_steer_overhead_ms_p50 (the stack, without the engine-side phases)."""
    with stack() as port:
        return http_figures(*asyncio.run(http_overhead(port)))


if __name__ == "__main__":
    if sys.argv[1:] != ["http"]:
        sys.exit("usage: python -m tests.bench.steer http (all: python -m tests.bench steer)")
    for figure in run_http():
        print(json.dumps({"group": "steer", **figure}))
