"""Names and timings shared by the steering consumer (web) and the live worker (workers/live.py).

Both sides meet only in Redis: the worker appends the numbered frames of a *run* (one
generation, identified by a random run id) to the run's replay list and publishes them on the
Redis pub/sub channel `steer:frames:<run>`, all runs of a flush in one pipelined round trip; the
web process reads them through one subscriber connection (explorer/steering/hub.py). The
consumer sets the run's cancel flag and announces it on CANCEL_CHANNEL, and watches the run's
heartbeat.

Why pub/sub rather than channel-layer groups: a channels_redis group_send costs two Redis round
trips and ~0.7 ms of the worker's GIL per run per flush, and the live worker's decode loop shares
that GIL; with 16 sessions publishing took about half of the worker's Python time
(docs/benchmarks.md, "steer"). Pub/sub may drop a message too (a subscriber reconnecting), which
the numbered frames and the replay list already repair. This module
imports neither torch nor Django models, so both processes can use it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

# Part of every SteeringResult hash. The same value as workers.engine.interventions.
# STEERING_VERSION, copied because the web process must not import torch (a test checks that
# the two agree): bump both when the engine changes what a given request generates.
STEERING_VERSION = 1

# The worker sends a run's new text at most this often (leading edge: the first token goes out
# at once), so the channel layer carries ~20 messages/s per run instead of one per token.
FLUSH_INTERVAL_S = 0.05
# A live run's heartbeat key is refreshed this often and expires after HEARTBEAT_TTL_S: a worker
# that dies mid-generation is noticed by the consumer's watchdog within TTL + one check.
HEARTBEAT_EVERY_S = 0.5
HEARTBEAT_TTL_S = 2.0
WATCHDOG_EVERY_S = 0.25
# A cancel is pushed to the worker on CANCEL_CHANNEL (it stops the run before its next decode
# step); the worker also reads its runs' cancel flags this often (one MGET for all of them), in
# case a pushed message was lost while its subscriber reconnected.
CANCEL_POLL_S = 0.25
CANCEL_CHANNEL = "steer:cancelled"
# Replay lists, cancel flags and gen -> run maps outlive a run by this much (a client that
# reconnects later starts a new request).
REPLAY_TTL_S = 120

# How long Redis remembers which SteeringResult answers a request key (the consumer's cache
# check without a database round trip). After it expires an identical request is generated
# again and stored under the same key, so it gets the same permalink.
RESULT_INDEX_TTL_S = 7 * 24 * 3600


def row_alternatives(probs: list[float], top: list[list[tuple[int, float]]]) -> dict:
    """A row's token probabilities as stored on its SteeringResult: {"probs": [p per token],
    "top": [[[token id, p], ...] per token]}, from the engine's Row.probs / Row.alternatives
    (already rounded; the pairs become JSON arrays as they are, with no copy)."""
    return {"probs": probs, "top": top}


def alternatives_fields(stored: dict | None, strings: Any) -> dict:
    """A `done` frame's `probs` and `alternatives` ([[token string, p], ...] per token) from
    `row_alternatives` output; `strings(ids)` gives token strings. Empty when none is stored
    (results older than these fields)."""
    if not stored or not stored.get("probs"):
        return {}
    flat = [i for alts in stored["top"] for i, _ in alts]
    names = iter(strings(flat))
    return {
        "probs": stored["probs"],
        "alternatives": [[[next(names), p] for _, p in alts] for alts in stored["top"]],
    }


def result_id_for(request_key: str) -> str:
    """The permalink id of the SteeringResult of a request key: derived from the key, so the
    worker can send it in `done` before the row is written, and identical requests finishing
    at once agree on it. 12 url-safe characters (72 bits)."""
    digest = hashlib.sha256(b"permalink:" + request_key.encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def new_run_id() -> str:
    return secrets.token_hex(8)


def frames_channel(run: str) -> str:
    """The pub/sub channel a run's frames are published on: a JSON list of frames."""
    return f"steer:frames:{run}"


def cancel_key(run: str) -> str:
    return f"steer:cancel:{run}"


def heartbeat_key(run: str) -> str:
    return f"steer:hb:{run}"


def replay_key(run: str) -> str:
    return f"steer:replay:{run}"


def result_key(request_key: str) -> str:
    return f"steer:result:{request_key}"


def gen_key(client: str, gen: str) -> str:
    """Which run a client's `gen` became (lets `resume` work on a new socket)."""
    return f"steer:gen:{client}:{gen}"


def in_flight_key(client: str) -> str:
    """A sorted set of the client's runs in flight, each scored by when it stops counting
    (services.in_flight_acquire)."""
    return f"steer:inflight:{client}"


def client_tag(client: str) -> str:
    """What the live worker knows of a client (the `client` of a task's payload), for its
    scheduler's round-robin: a digest, since the client id may hold a session key and task
    arguments are visible in the broker and in Flower. 16 hex characters."""
    return hashlib.sha256(b"client:" + client.encode()).hexdigest()[:16]
