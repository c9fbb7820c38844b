"""Driving /ws/steer/ in tests: connect a websocket to the ASGI app, build steer messages,
collect a generation's frames and wait for its stored result."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.explorer.websocket import WebsocketCommunicator
from tests.helpers import wait_until

LOCAL = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


def application():
    from explorer.asgi import application

    return application


async def connect(
    headers: list[tuple[bytes, bytes]] | None = None, client: tuple[str, int] | None = None
) -> WebsocketCommunicator:
    """A socket on /ws/steer/; `client` is the peer's (address, port) (none by default: the
    consumer then counts an unknown address)."""
    comm = WebsocketCommunicator(
        application(), "/ws/steer/", headers=headers or LOCAL, client=client
    )
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def collect(comm: WebsocketCommunicator, gen: Any, timeout: float = 60.0) -> list[dict]:
    """Frames until `gen` is done (both rows) or failed; frames of other gens included."""
    frames: list[dict] = []
    done: set[str] = set()
    # Each receive waits for what is left of the deadline (this runs on the event loop, so it
    # cannot use wait_until's sleeps).
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no end of gen {gen} within {timeout}s: {frames[-5:]}"
        frame = await comm.receive_json_from(timeout=left)
        frames.append(frame)
        if frame.get("gen") != gen:
            continue
        if frame["type"] == "error":
            return frames
        if frame["type"] == "done":
            done.add(frame["row"])
            if len(done) == 2:
                return frames


def wait_stored(result_id: str, redis_url: str) -> None:
    """`done` goes out before the row is written (its id follows from the request key); wait
    for the row and its cache entry."""
    import redis

    from explorer.steering.models import SteeringResult
    from explorer.steering.streams import result_key

    def stored() -> bool:
        row = SteeringResult.objects.filter(pk=result_id).first()
        return row is not None and bool(redis.Redis.from_url(redis_url).exists(result_key(row.key)))

    wait_until(stored, timeout=10, interval=0.05, message=f"result {result_id} was not stored")


def steer(gen: Any, **overrides: Any) -> dict:
    message = {
        "type": "steer",
        "gen": gen,
        "model": "demo",
        "prompt": "The city council",
        "features": [{"sae": "demo", "index": 5, "strength": 8.0, "mode": "add"}],
        "positions": "all",
        "temperature": 0.8,
        "top_p": 0.95,
        "seed": 3,
        "max_new_tokens": 8,
    }
    message.update(overrides)
    return message
