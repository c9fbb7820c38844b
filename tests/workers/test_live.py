"""workers/live.py through the real worker: a steer task streams numbered frames into the
run's Redis replay list (what the consumer forwards and resyncs from), skips a run cancelled
while it waited, and the live tasks are never redelivered."""

from __future__ import annotations

import json

import pytest

from tests.explorer.steering.helpers import wait_stored
from tests.helpers import wait_until
from workers.live import build_vector, steer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_fresh_catalogue"),
]


def _payload(prompt: str, n: int = 4) -> dict:
    from explorer.steering import selectors, streams
    from explorer.steering.conf import limits
    from explorer.steering.protocol import parse_message

    message = parse_message(
        {
            "type": "steer",
            "gen": 1,
            "model": "demo",
            "prompt": prompt,
            "features": [{"sae": "demo", "index": 5, "strength": 6.0}],
            "seed": 1,
            "max_new_tokens": n,
        },
        limits(),
    )
    req = selectors.steer_request_resolve(message=message, model_slug=None)
    return req.payload(streams.new_run_id())


def _replay(redis_url: str, run: str) -> list[dict]:
    import redis

    from explorer.steering.streams import replay_key

    return [json.loads(x) for x in redis.Redis.from_url(redis_url).lrange(replay_key(run), 0, -1)]


def test_live_tasks_are_acked_early_so_a_dead_worker_never_replays_them():
    assert steer.acks_late is False
    assert build_vector.acks_late is False


def test_a_steer_task_streams_numbered_frames_to_the_replay_list(
    demo_rows, redis_url, celery_worker_proc
):
    from explorer.steering.models import SteeringResult

    payload = _payload("The river")
    steer.apply_async(args=[payload], queue="live.demo")

    def both_rows_done() -> list[dict] | None:
        frames = _replay(redis_url, payload["run"])
        return frames if sum(f["type"] == "done" for f in frames) == 2 else None

    frames = wait_until(
        both_rows_done,
        timeout=60,
        interval=0.2,
        message=lambda: f"no done for both rows: {_replay(redis_url, payload['run'])[-5:]}",
    )
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    done = {f["row"]: f for f in frames if f["type"] == "done"}
    assert set(done) == {"default", "steered"}
    for row in ("default", "steered"):
        deltas = "".join(f["text"] for f in frames if f["type"] == "delta" and f["row"] == row)
        assert deltas == done[row]["text"]
        assert len(done[row]["tokens"]) == len(done[row]["token_ids"]) <= 4
    wait_stored(done["steered"]["result"], redis_url)
    stored = SteeringResult.objects.get(pk=done["steered"]["result"])
    from workers.engine.specs import SteerRequest

    assert stored.key == SteerRequest.from_dict(payload["request"]).key()


def test_a_run_cancelled_while_queued_is_skipped(demo_rows, redis_url, celery_worker_proc):
    import redis

    from explorer.steering.streams import cancel_key, heartbeat_key

    payload = _payload("Never mind")
    client = redis.Redis.from_url(redis_url)
    client.set(cancel_key(payload["run"]), b"1", ex=60)
    steer.apply_async(args=[payload], queue="live.demo")
    probe = _payload("After it", n=1)  # the worker takes tasks in order: wait for this one
    steer.apply_async(args=[probe], queue="live.demo")
    wait_until(
        lambda: any(f["type"] == "done" for f in _replay(redis_url, probe["run"])),
        timeout=60,
        interval=0.2,
        message="the probe run after it never finished",
    )
    assert _replay(redis_url, payload["run"]) == []
    assert not client.exists(heartbeat_key(payload["run"]))


def test_building_a_missing_vector_is_logged_and_skipped(caplog):
    build_vector.run(987654321)
    assert "is gone" in caplog.text
