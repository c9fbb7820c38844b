"""steer_fair_ttft_ratio: one client's flood against another's time to first token.

Through the real stack of ``tests/bench/steer.py`` (its own Redis and database, one live worker
with one torch thread, uvicorn), with the steering limits at their defaults (STEER_MAX_IN_FLIGHT
4, STEER_RATE_LIMIT 240 per minute; only the start timeout is longer, for the worker's first
load on a busy machine):

- the well-behaved client connects from 127.0.0.2 and sends one short request at a time
  (8 new tokens per row), waiting for its end; its time to first token is `steer` sent -> first
  steered delta received;
- the flooding client connects from 127.0.0.1 with FLOOD_SOCKETS websockets, each sending one
  request (64 new tokens per row) and the next as soon as it ends, so that it always asks for
  FLOOD_SOCKETS in flight; a refused one (`rate_limited`: past the cap, or the rate limit) is
  sent again after RETRY_S, which keeps the flood within the per-minute limit, as the attack
  this measures was (a client retrying refusals in a tight loop floods the web process with
  requests instead, which the rate limit and the proxy in front answer);
- quiet: the well-behaved client's median over REPEATS requests with no flood (half before the
  flood, half after it, as this shared machine's load drifts); flooded: its median while the
  flood runs. The figure is flooded ÷ quiet.

``python -m tests.bench._hardening_fair`` prints the figure alone.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from typing import Any, Self

from tests.bench.steer import Session, message, stack

FLOOD_SOCKETS = 200
RETRY_S = 60.0  # a refused flood request is sent again after this long
REPEATS = 20
FLOOD_TOKENS = 64
POLITE_TOKENS = 8
POLITE = "127.0.0.2"  # loopback: any 127.x address reaches the server
FLOOD = "127.0.0.1"
SETTLE_S = 3.0  # the flood runs this long before the polite client measures
TIMEOUT_S = 900.0  # the whole measurement: a stalled stack fails the figure, never hangs it

_unique = itertools.count()


def _request(tag: str, n: int) -> dict:
    """A request no earlier one equals (strength differs by a hair), so none is cached."""
    k = next(_unique)
    return message(f"{tag}{k}", seed=40000 + k, n=n, strength=6.0 + k * 1e-6)


async def _ttft(s: Session, n: int) -> list[float]:
    """Seconds to the first steered delta of `n` requests, one after another."""
    times = []
    for _ in range(n):
        msg = _request("p", POLITE_TOKENS)
        sent = await s.send(msg)
        frames = await s.finished(msg["gen"])
        times.append(
            next(t for t, f in frames if f["type"] == "delta" and f["row"] == "steered") - sent
        )
    return times


class Flood:
    """FLOOD_SOCKETS sockets from one address, each keeping a request in flight."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[Session] = []
        self.tasks: list[asyncio.Task] = []
        self.finished = 0
        self.refused = 0

    async def __aenter__(self) -> Self:
        for _ in range(FLOOD_SOCKETS):
            s = Session(self.port, address=FLOOD)
            await s.__aenter__()
            self.sockets.append(s)
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._keep(s)) for s in self.sockets]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        ended = await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(s.__aexit__() for s in self.sockets), return_exceptions=True)
        failed = [e for e in ended if not isinstance(e, (asyncio.CancelledError, type(None)))]
        if failed:
            raise RuntimeError(f"{len(failed)} flood sockets failed") from failed[0]

    async def _keep(self, s: Session) -> None:
        while True:
            msg = _request("f", FLOOD_TOKENS)
            await s.send(msg)
            await asyncio.wait_for(s.done[msg["gen"]].wait(), 600)
            first = s.frames[msg["gen"]][0][1]
            if first["type"] != "error":
                self.finished += 1
            elif first.get("code") == "rate_limited":
                self.refused += 1
                await asyncio.sleep(RETRY_S)
            else:
                raise RuntimeError(f"flood request failed: {first['message']}")
            del s.frames[msg["gen"]], s.done[msg["gen"]]


async def _phases(port: int) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S), Session(port, address=POLITE) as polite:
        await _ttft(polite, 3)  # warm-up: the worker loads the model
        quiet = await _ttft(polite, REPEATS // 2)
        async with Flood(port) as flood:
            await asyncio.sleep(SETTLE_S)
            t0 = time.perf_counter()
            finished0, refused0 = flood.finished, flood.refused
            flooded = await _ttft(polite, REPEATS)
            window = time.perf_counter() - t0
            stats = {
                "flood_refused_at_start": refused0,
                "flood_finished_per_s": round((flood.finished - finished0) / window, 1),
                "flood_refused_per_s": round((flood.refused - refused0) / window, 1),
            }
        quiet += await _ttft(polite, REPEATS - REPEATS // 2)
    return {"quiet": quiet, "flooded": flooded, **stats}


def run() -> list[dict[str, Any]]:
    # A slow first start (the worker imports the engine) must not fail the warm-up.
    with stack(
        STEER_MAX_IN_FLIGHT="4", STEER_RATE_LIMIT="240", STEER_START_TIMEOUT_S="120"
    ) as port:
        got = asyncio.run(_phases(port))
    quiet, flooded = statistics.median(got["quiet"]), statistics.median(got["flooded"])
    return [
        {
            "name": "steer_fair_ttft_ratio",
            "value": round(flooded / quiet, 2),
            "unit": "ratio",
            "target": "<= 3",
            "quiet_ttft_ms_p50": round(quiet * 1000, 1),
            "flooded_ttft_ms_p50": round(flooded * 1000, 1),
            "flooded_ttft_ms_max": round(max(got["flooded"]) * 1000, 1),
            "flood_sockets": FLOOD_SOCKETS,
            "max_in_flight": 4,
            "flood_refused_at_start": got["flood_refused_at_start"],
            "flood_finished_per_s": got["flood_finished_per_s"],
            "flood_refused_per_s": got["flood_refused_per_s"],
            "repeats": REPEATS,
        }
    ]


if __name__ == "__main__":
    for figure in run():
        print(json.dumps({"group": "hardening", **figure}))
