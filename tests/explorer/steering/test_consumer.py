"""/ws/steer/ end to end: the consumer (this process) -> real Redis -> the real Celery worker
(the engine's batched decoding) -> frames back through the Redis channel layer."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from tests.explorer.steering.helpers import LOCAL, collect, connect, steer, wait_stored

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _engine_output(att, message: dict):
    from workers.engine.generation import generate
    from workers.engine.specs import Intervention, SteerSpec

    spec = SteerSpec(
        interventions=tuple(
            Intervention(feature=f["index"], strength=f["strength"], mode=f["mode"])
            for f in message["features"]
        ),
        positions=message["positions"],
        temperature=message["temperature"],
        top_p=message["top_p"],
        seed=message["seed"],
        max_new_tokens=message["max_new_tokens"],
    )
    return generate(att, message["prompt"], spec)


def _of(frames: list[dict], gen, kind: str | None = None) -> list[dict]:
    return [f for f in frames if f.get("gen") == gen and (kind is None or f["type"] == kind)]


def test_steer_streams_numbered_deltas_then_done_equal_to_the_engine_output(
    demo_rows, demo_engine, celery_worker_proc, settings
):
    from explorer.steering.models import SteeringResult

    message = steer(1)

    async def scenario():
        comm = await connect()
        await comm.send_json_to(message)
        frames = await collect(comm, 1)
        await comm.disconnect(timeout=5)
        return frames

    frames = async_to_sync(scenario)()
    mine = _of(frames, 1)
    assert [f["type"] for f in mine if f["type"] == "error"] == []
    assert [f["seq"] for f in mine] == list(range(1, len(mine) + 1))
    done = {f["row"]: f for f in _of(frames, 1, "done")}
    expected = _engine_output(demo_engine, message)
    for row in ("default", "steered"):
        streamed = "".join(f["text"] for f in mine if f["type"] == "delta" and f["row"] == row)
        assert streamed == done[row]["text"] == getattr(expected, row).text
        assert done[row]["token_ids"] == getattr(expected, row).tokens
        assert "".join(done[row]["tokens"]) == demo_engine.lm.decode(done[row]["token_ids"]) or len(
            done[row]["tokens"]
        ) == len(done[row]["token_ids"])
        # each token's probability and the five likeliest tokens at its step (hover)
        assert (
            len(done[row]["probs"]) == len(done[row]["alternatives"]) == len(done[row]["token_ids"])
        )
        for p, alts in zip(done[row]["probs"], done[row]["alternatives"], strict=True):
            assert 0 <= p <= 1 and len(alts) == 5
            assert all(isinstance(t, str) and 0 <= q <= 1 for t, q in alts)
            assert [q for _, q in alts] == sorted((q for _, q in alts), reverse=True)
    assert done["default"]["text"] != done["steered"]["text"]
    wait_stored(done["steered"]["result"], settings.REDIS_URL)
    stored = SteeringResult.objects.get(pk=done["steered"]["result"])
    assert stored.steered_text == expected.steered.text
    assert stored.request["prompt"] == message["prompt"]


def test_an_identical_request_is_answered_from_the_cache_without_a_worker(
    demo_rows, celery_worker_proc, redis_url
):
    async def first():
        comm = await connect()
        await comm.send_json_to(steer("a"))
        frames = await collect(comm, "a")
        await comm.disconnect(timeout=5)
        return frames

    original = {f["row"]: f for f in _of(async_to_sync(first)(), "a", "done")}
    wait_stored(original["steered"]["result"], redis_url)
    celery_worker_proc.stop()

    async def again():
        comm = await connect()
        started = time.monotonic()
        # the same request: feature order, label and max_activation do not change the key
        await comm.send_json_to(
            steer(
                "b",
                features=[{"sae": "demo", "index": 5, "strength": 8, "mode": "add", "label": "x"}],
            )
        )
        frames = await collect(comm, "b", timeout=5)
        await comm.disconnect(timeout=5)
        return frames, time.monotonic() - started

    frames, took = async_to_sync(again)()
    done = {f["row"]: f for f in _of(frames, "b", "done")}
    assert took < 2.0
    for row in ("default", "steered"):
        assert done[row]["text"] == original[row]["text"]
        assert done[row]["result"] == original[row]["result"]
        assert done[row]["tokens"] == original[row]["tokens"]
        assert done[row]["probs"] == original[row]["probs"]
        assert done[row]["alternatives"] == original[row]["alternatives"]


def test_a_new_steer_supersedes_the_running_one(demo_rows, celery_worker_proc, redis_url):
    from explorer.steering.models import SteeringResult

    async def attempt(first: int, prompt: str) -> list[dict]:
        comm = await connect()
        await comm.send_json_to(steer(first, max_new_tokens=110, prompt=prompt, temperature=0.0))
        while True:  # the first generation is streaming
            frame = await comm.receive_json_from(timeout=60)
            assert frame["type"] != "error", frame
            if frame["type"] == "delta":
                break
        await comm.send_json_to(steer(first + 1, max_new_tokens=6))
        frames = await collect(comm, first + 1)
        while not await comm.receive_nothing(timeout=0.5):  # anything still in flight
            frames.append(await comm.receive_json_from())
        await comm.disconnect(timeout=5)
        return frames

    # See test_cancel_stops_the_running_generation for why a few attempts are allowed.
    for first, prompt in [(1, "It"), (11, "Then"), (21, "When")]:
        frames = async_to_sync(attempt)(first, prompt)
        assert {f["row"] for f in _of(frames, first + 1, "done")} == {"default", "steered"}
        if _of(frames, first, "done") == []:
            break
    else:
        pytest.fail("no attempt superseded the first generation before it finished")
    wait_stored(_of(frames, first + 1, "done")[0]["result"], redis_url)
    assert not SteeringResult.objects.filter(request__prompt=prompt).exists()
    assert SteeringResult.objects.filter(request__prompt="The city council").exists()


def test_a_worker_killed_mid_generation_gives_an_error_within_5_seconds(
    demo_rows, celery_worker_proc
):
    async def attempt(gen: int, prompt: str):
        comm = await connect()
        # greedy: the demo model runs all 110 tokens (no EOS), many decode steps
        await comm.send_json_to(steer(gen, max_new_tokens=110, prompt=prompt, temperature=0.0))
        frame = await comm.receive_json_from(timeout=60)
        assert frame["type"] == "delta", frame
        celery_worker_proc.stop()
        killed = time.monotonic()
        frames = await collect(comm, gen, timeout=10)
        await comm.disconnect(timeout=5)
        return frames, time.monotonic() - killed

    # See test_cancel_stops_the_running_generation for why a few attempts are allowed.
    for gen, prompt in enumerate(["It", "Then", "When"]):
        if not celery_worker_proc.alive():
            celery_worker_proc.start()
        frames, took = async_to_sync(attempt)(gen, prompt)
        if frames[-1]["type"] == "error":
            break
    else:
        pytest.fail("every generation finished before the worker was killed")
    assert "worker" in frames[-1]["message"]
    assert took < 5.0


def test_no_worker_on_the_queue_gives_an_error_instead_of_a_hang(
    demo_rows, celery_worker_proc, settings
):
    settings.STEER_START_TIMEOUT_S = 1.0
    celery_worker_proc.stop()

    async def scenario():
        comm = await connect()
        await comm.send_json_to(steer(1, prompt="Nobody is listening"))
        frames = await collect(comm, 1, timeout=5)
        await comm.disconnect(timeout=5)
        return frames

    frames = async_to_sync(scenario)()
    assert frames[-1]["type"] == "error"
    assert "live.demo" in frames[-1]["message"]


def test_resume_replays_the_frames_after_a_sequence_number(demo_rows, celery_worker_proc):
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session.create()  # a session's gens can be resumed from another socket
    cookie = [(b"cookie", f"sessionid={session.session_key}".encode())]

    async def scenario():
        comm = await connect(headers=LOCAL + cookie)
        await comm.send_json_to(steer(4, prompt="A river"))
        first = await collect(comm, 4)
        await comm.send_json_to({"type": "resume", "gen": 4, "after_seq": 2})
        same_socket = await collect(comm, 4, timeout=5)
        await comm.disconnect(timeout=5)
        comm = await connect(headers=LOCAL + cookie)  # a new socket of the same session
        await comm.send_json_to({"type": "resume", "gen": 4, "after_seq": 1})
        again = await collect(comm, 4, timeout=5)
        await comm.disconnect(timeout=5)
        comm = await connect()  # no session: someone else behind the same address
        await comm.send_json_to({"type": "resume", "gen": 4, "after_seq": 0})
        stranger = await comm.receive_json_from(timeout=5)
        await comm.disconnect(timeout=5)
        return first, same_socket, again, stranger

    first, same_socket, again, stranger = async_to_sync(scenario)()
    assert same_socket == [f for f in first if f["seq"] > 2]
    assert again == [f for f in first if f["seq"] > 1]
    assert stranger["type"] == "error" and "nothing to resume" in stranger["message"]


def test_the_rate_limit_refuses_generations_with_a_clear_message(
    demo_rows, celery_worker_proc, settings
):
    settings.STEER_RATE_LIMIT = 2

    async def scenario():
        comm = await connect()
        for gen in (1, 2, 3):
            await comm.send_json_to(steer(gen, prompt=f"Rate {gen}", max_new_tokens=2))
        frames = await collect(comm, 3)
        await comm.disconnect(timeout=5)
        return frames

    frames = async_to_sync(scenario)()
    assert frames[-1]["type"] == "error"
    assert frames[-1]["message"].startswith("rate limit: at most 2 generations per")


def test_bad_messages_get_error_frames_and_the_socket_stays_usable(demo_rows, celery_worker_proc):
    async def scenario():
        comm = await connect()
        errors = []
        await comm.send_input({"type": "websocket.receive", "text": "{not json"})
        errors.append(await comm.receive_json_from(timeout=15))
        bad = [
            {"type": "dance", "gen": 1},
            steer(2, features=[{"sae": "demo", "index": 99999, "strength": 1}]),
            steer(3, features=[{"sae": "nope", "index": 1, "strength": 1}]),
            steer(4, features=[{"sae": "demo", "index": 1, "strength": float("nan")}]),
            steer(5, features=[{"sae": "demo", "index": i, "strength": 1} for i in range(9)]),
            steer(6, prompt="x" * 5000),
            steer(7, max_new_tokens=100000),
            steer(8, model="gpt-17"),
            {"type": "resume", "gen": 404, "after_seq": 0},
        ]
        for message in bad:
            await comm.send_json_to(message)
            errors.append(await comm.receive_json_from(timeout=15))
        await comm.send_json_to(steer(10, prompt="Still here", max_new_tokens=3))
        frames = await collect(comm, 10)
        await comm.disconnect(timeout=5)
        return errors, frames

    errors, frames = async_to_sync(scenario)()
    assert [e["type"] for e in errors] == ["error"] * 10
    assert [e["gen"] for e in errors] == [None, 1, 2, 3, 4, 5, 6, 7, 8, 404]
    messages = [e["message"] for e in errors]
    assert "JSON" in messages[0]
    assert "unknown message type" in messages[1]
    assert "unknown feature demo:99999: this SAE has 1536 features" in messages[2]
    assert "unknown SAE 'nope'" in messages[3]
    assert "finite" in messages[4]
    assert "too many features" in messages[5]
    assert "prompt is too long" in messages[6]
    assert "max_new_tokens must be between" in messages[7]
    assert "unknown model 'gpt-17'" in messages[8]
    assert "nothing to resume" in messages[9]
    assert frames[-1]["type"] == "done"


def test_cancel_stops_the_running_generation(demo_rows, celery_worker_proc):
    from explorer.steering.models import SteeringResult

    async def attempt(gen: int, prompt: str) -> list[dict]:
        comm = await connect()
        await comm.send_json_to(steer(gen, max_new_tokens=110, prompt=prompt, temperature=0.0))
        while (await comm.receive_json_from(timeout=60))["type"] != "delta":
            pass
        await comm.send_json_to({"type": "cancel", "gen": gen})
        frames = []
        while not await comm.receive_nothing(timeout=1.5):
            frames.append(await comm.receive_json_from())
        await comm.disconnect(timeout=5)
        return frames

    # A 110-token generation of the demo model takes ~0.15 s on an idle machine: a load spike
    # in this shared machine can delay the cancel past its end, so a few attempts are allowed.
    for gen, prompt in enumerate(["It", "Then", "When"]):
        frames = async_to_sync(attempt)(gen, prompt)
        if not [f for f in frames if f["type"] in ("done", "error")]:
            break
    else:
        pytest.fail("no attempt was cancelled before it finished")
    assert not SteeringResult.objects.filter(request__prompt=prompt).exists()


def test_json_nested_past_the_recursion_limit_gets_an_error_frame_and_the_socket_stays_open():
    async def scenario():
        comm = await connect()
        replies = []
        for text in ("[" * 100_000, '{"type": "steer", "gen": 1, "prompt": "a\\u0000b"}'):
            await comm.send_input({"type": "websocket.receive", "text": text})
            replies.append(await comm.receive_json_from(timeout=15))
        await comm.disconnect(timeout=5)
        return replies

    deep, nul = async_to_sync(scenario)()
    assert deep == {
        "type": "error",
        "gen": None,
        "message": "a message nests deeper than 32 levels.",
    }
    assert nul == {
        "type": "error",
        "gen": 1,
        "message": "prompt contains a NUL character, which is not allowed.",
        "code": "bad_message",
    }


def test_a_nul_in_the_sockets_model_is_an_error_frame_then_a_close():
    from tests.explorer.steering.helpers import application
    from tests.explorer.websocket import WebsocketCommunicator

    async def scenario():
        comm = WebsocketCommunicator(application(), "/ws/steer/?model=de%00mo", headers=LOCAL)
        assert (await comm.connect(timeout=5))[0]
        frame = await comm.receive_json_from(timeout=5)
        closed = await comm.receive_output(timeout=5)
        await comm.wait(timeout=5)
        return frame, closed

    frame, closed = async_to_sync(scenario)()
    assert frame["type"] == "error"
    assert "model in the URL contains a NUL character" in frame["message"]
    assert (
        closed == {"type": "websocket.close", "code": 4400, "reason": ""} or closed["code"] == 4400
    )
