"""Names and timings shared by the steering consumer (web) and the live worker (workers/live.py).

Both sides meet only in Redis: the worker publishes numbered frames of a *run* (one generation,
identified by a random run id) to the channel-layer group `steer.<run>` and appends each frame
to a replay list; the consumer sets the run's cancel flag and watches its heartbeat. This module
imports neither torch nor Django models, so both processes can use it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

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
# How often the worker reads the cancel flags of its runs (one MGET for all of them): a
# superseded run stops within this plus one decode step.
CANCEL_POLL_S = 0.01
# Replay lists, cancel flags and gen -> run maps outlive a run by this much (a client that
# reconnects later starts a new request).
REPLAY_TTL_S = 120

# How long Redis remembers which SteeringResult answers a request key (the consumer's cache
# check without a database round trip). After it expires an identical request is generated
# again and stored under the same key, so it gets the same permalink.
RESULT_INDEX_TTL_S = 7 * 24 * 3600

EVENT_TYPE = "steer.frames"  # channel-layer message type: {"run", "frames": [...]}


def result_id_for(request_key: str) -> str:
    """The permalink id of the SteeringResult of a request key: derived from the key, so the
    worker can send it in `done` before the row is written, and identical requests finishing
    at once agree on it. 12 url-safe characters (72 bits)."""
    digest = hashlib.sha256(b"permalink:" + request_key.encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def new_run_id() -> str:
    return secrets.token_hex(8)


def group(run: str) -> str:
    return f"steer.{run}"


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


def rate_key(client: str, window: int) -> str:
    return f"steer:rate:{client}:{window}"
