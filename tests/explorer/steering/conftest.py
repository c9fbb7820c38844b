"""Fixtures for live steering: the demo model loaded once in this process (for the engine's
direct output), and its LanguageModel/SAE rows, created per test for the real worker to see
(so tests using them run with transactional_db)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.explorer.websocket import WebsocketCommunicator

LOCAL = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


@pytest.fixture(scope="session")
def demo_engine():
    from workers.engine.loading import attach_sae, load_model, load_sae

    lm = load_model("demo", device="cpu")
    return attach_sae(lm, load_sae("demo", device="cpu"))


@pytest.fixture
def demo_rows(demo_engine, transactional_db):
    """The demo model and SAE registered as `demo` / `demo`, as `sae_register` writes them
    (its field helpers, without loading the model again)."""
    from explorer.saes.models import SAE, LanguageModel
    from explorer.saes.services import _model_fields, _sae_fields, vocab_for_storage

    lm = LanguageModel.objects.create(
        slug="demo", source="demo", vocab=vocab_for_storage(demo_engine.lm.vocab_strings()),
        **_model_fields(demo_engine.lm))
    sae = SAE.objects.create(model=lm, slug="demo", source="demo", **_sae_fields(demo_engine, "demo"))
    return lm, sae


def application():
    from explorer.asgi import application

    return application


async def connect(headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application(), "/ws/steer/", headers=headers or LOCAL)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def collect(comm: WebsocketCommunicator, gen: Any, timeout: float = 60.0) -> list[dict]:
    """Frames until `gen` is done (both rows) or failed; frames of other gens included."""
    frames: list[dict] = []
    done: set[str] = set()
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

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = SteeringResult.objects.filter(pk=result_id).first()
        if row is not None and redis.Redis.from_url(redis_url).exists(result_key(row.key)):
            return
        time.sleep(0.05)
    pytest.fail(f"result {result_id} was not stored")


def steer(gen: Any, **overrides: Any) -> dict:
    message = {"type": "steer", "gen": gen, "model": "demo", "prompt": "The city council",
               "features": [{"sae": "demo", "index": 5, "strength": 8.0, "mode": "add"}],
               "positions": "all", "temperature": 0.8, "top_p": 0.95, "seed": 3,
               "max_new_tokens": 8}
    message.update(overrides)
    return message


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    """The consumer caches model/SAE rows per process for a few seconds; each test makes its
    own rows (new ids), so it starts with an empty cache."""
    from explorer.steering import consumers

    consumers._catalogues.clear()
    yield
    consumers._catalogues.clear()
