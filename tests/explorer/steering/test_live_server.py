"""/ws/steer/ through the real ASGI server (uvicorn, as deployed): a websocket client on
loopback -> SteerConsumer -> Redis -> the Celery worker -> back."""

from __future__ import annotations

import json
import time

import pytest

from tests.explorer.steering.helpers import steer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _until_done(ws, gen, timeout: float = 60.0) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while sum(f["type"] == "done" for f in frames if f.get("gen") == gen) < 2:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert frame["type"] != "error", frame
        frames.append(frame)
    return frames


def test_a_browser_style_client_steers_through_uvicorn(
    demo_rows, celery_worker_proc, live_server_url
):
    from websockets.sync.client import connect

    url = live_server_url.replace("http://", "ws://") + "/ws/steer/"
    with connect(url, origin=live_server_url) as ws:
        ws.send(json.dumps(steer(1, prompt="<script>alert(1)</script>", max_new_tokens=5)))
        first = _until_done(ws, 1)
        started = time.monotonic()
        ws.send(json.dumps(steer(2, prompt="<script>alert(1)</script>", max_new_tokens=5)))
        again = _until_done(ws, 2, timeout=10)
        took = time.monotonic() - started
    done1 = {f["row"]: f for f in first if f["type"] == "done"}
    done2 = {f["row"]: f for f in again if f["type"] == "done"}
    assert done1["steered"]["result"] == done2["steered"]["result"]
    assert done1["default"]["text"] == done2["default"]["text"]
    assert took < 2.0
