"""The worker -> consumer leg (explorer/steering/hub.py): frames published on a run's pub/sub
channel reach the consumer that follows it; what pub/sub loses is taken from the replay list.

No worker runs here: the test plays the worker, writing a run's replay list and heartbeat and
publishing (or not) its frames, as workers/live.py does."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from tests.explorer.steering.helpers import collect, connect, steer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _frames(text: str) -> list[dict]:
    """A run's frames as the worker numbers them: a delta per row, then a done per row."""
    frames = [
        {"type": "delta", "row": row, "seq": i + 1, "text": text}
        for i, row in enumerate(("default", "steered"))
    ]
    frames += [
        {
            "type": "done",
            "row": row,
            "seq": i + 3,
            "text": text,
            "tokens": [text],
            "token_ids": [1],
            "result": "r",
        }
        for i, row in enumerate(("default", "steered"))
    ]
    return frames


async def _followed_run(comm, hub, gen) -> str:
    """Send a steer and return the run id the consumer subscribed to."""
    before = set(hub.listeners)
    await comm.send_json_to(steer(gen, prompt=f"Played by the test {gen}"))
    for _ in range(500):
        new = set(hub.listeners) - before
        if new:
            return hub.listeners[new.pop()][0]
        await asyncio.sleep(0.01)
    raise AssertionError("the consumer subscribed to no run")


def test_frames_lost_on_pub_sub_are_taken_from_the_replay_list(
    demo_rows, celery_worker_proc, redis_url, settings
):
    import redis.asyncio

    from explorer.steering import streams
    from explorer.steering.hub import frame_hub

    celery_worker_proc.stop()  # this test plays the worker
    settings.STEER_START_TIMEOUT_S = 30.0

    async def scenario():
        r = redis.asyncio.Redis.from_url(redis_url)
        comm = await connect()
        hub = frame_hub()
        runs = []
        try:
            # A gap: frame 2 is never published; frame 3 reveals it, the list fills it in.
            run = await _followed_run(comm, hub, 1)
            runs.append(run)
            frames = _frames("a")
            await r.set(streams.heartbeat_key(run), b"1", ex=30)
            await r.rpush(streams.replay_key(run), *[json.dumps(f) for f in frames])
            await r.publish(streams.frames_channel(run), json.dumps(frames[:1]))
            await r.publish(streams.frames_channel(run), json.dumps(frames[2:]))
            gap = await collect(comm, 1, timeout=10)
            # The end lost: only frame 1 is published and the worker's heartbeat is gone; the
            # watchdog finds the rest in the list instead of reporting a dead worker.
            run = await _followed_run(comm, hub, 2)
            runs.append(run)
            frames = _frames("b")
            await r.rpush(streams.replay_key(run), *[json.dumps(f) for f in frames])
            await r.publish(streams.frames_channel(run), json.dumps(frames[:1]))
            tail = await collect(comm, 2, timeout=10)
            return gap, tail
        finally:
            await comm.disconnect(timeout=5)
            for run in runs:  # the queued tasks must not run when the worker is back
                await r.set(streams.cancel_key(run), b"1", ex=60)
            await r.aclose()

    gap, tail = async_to_sync(scenario)()
    assert [(f["type"], f["seq"]) for f in gap] == [
        ("delta", 1),
        ("delta", 2),
        ("done", 3),
        ("done", 4),
    ]
    assert [(f["type"], f["seq"]) for f in tail] == [
        ("delta", 1),
        ("delta", 2),
        ("done", 3),
        ("done", 4),
    ]
    assert all(f["gen"] == 2 for f in tail)
