"""Each client's cap on generations in flight (STEER_MAX_IN_FLIGHT), counted in the real
Redis across sockets and HTTP: past it a request gets a `rate_limited` error frame (429 over
HTTP), other clients are not refused, and a run stops counting when it finishes, fails, is
cancelled, superseded or its socket closes.

Runs meant to stay in flight steer model `idle`: the demo's rows under another slug, whose
queue live.idle no worker consumes, so they wait until cancelled (no race with a fast
worker). The fairness of the worker's batch is tested in tests/engine/test_scheduler.py.
"""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import async_to_sync

from tests.explorer.steering.helpers import collect, connect, steer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ALICE = ("10.0.0.1", 40001)  # every socket of one address is one client
BOB = ("10.0.0.2", 40002)
CAP_MESSAGE = "too many generations at once: at most 2 in flight per client"


@pytest.fixture
def idle_rows(demo_rows, redis_url, settings):
    """Model `idle` (the demo's rows again), whose queue no worker consumes; the Redis counts
    start empty and the queue is emptied afterwards."""
    import redis

    lm, sae = demo_rows
    lm.pk, lm.slug, lm.source = None, "idle", "demo-idle"
    lm.save()
    sae.pk, sae.model = None, lm
    sae.save()
    settings.STEER_MAX_IN_FLIGHT = 2
    settings.STEER_START_TIMEOUT_S = 60.0
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("steer:inflight:*"):
        r.delete(key)
    yield lm
    for key in r.scan_iter("live.idle*"):
        r.delete(key)


def in_flight(redis_url: str, address: str) -> int:
    import redis

    from explorer.steering.streams import in_flight_key

    return redis.Redis.from_url(redis_url).zcard(in_flight_key(f"a{address}"))


def idle(gen, **overrides) -> dict:
    return steer(gen, model="idle", prompt=f"Waiting {gen}", **overrides)


def test_past_the_cap_a_client_gets_a_rate_limited_error_frame(idle_rows, redis_url):
    async def scenario():
        socks = [await connect(client=ALICE) for _ in range(3)]
        for gen, comm in enumerate(socks[:2]):
            await comm.send_json_to(idle(gen))
            assert await comm.receive_nothing(timeout=0.3)  # taken: no error
        await socks[2].send_json_to(idle(2))
        refused = await socks[2].receive_json_from(timeout=5)
        counted = in_flight(redis_url, ALICE[0])
        for comm in socks:
            await comm.disconnect(timeout=5)
        return refused, counted

    refused, counted = async_to_sync(scenario)()
    assert counted == 2
    assert refused["type"] == "error" and refused["gen"] == 2
    assert refused["code"] == "rate_limited"
    assert refused["message"].startswith(CAP_MESSAGE)
    assert in_flight(redis_url, ALICE[0]) == 0  # closing the sockets released both


def test_another_client_is_not_refused_while_one_is_at_its_cap(idle_rows, redis_url):
    async def scenario():
        flood = [await connect(client=ALICE) for _ in range(3)]
        for gen, comm in enumerate(flood[:2]):
            await comm.send_json_to(idle(gen))
            assert await comm.receive_nothing(timeout=0.3)
        await flood[2].send_json_to(idle(2))
        refused = await flood[2].receive_json_from(timeout=5)
        other = await connect(client=BOB)
        await other.send_json_to(idle("b"))
        quiet = await other.receive_nothing(timeout=0.5)
        for comm in [*flood, other]:
            await comm.disconnect(timeout=5)
        return refused, quiet

    refused, quiet = async_to_sync(scenario)()
    assert refused["code"] == "rate_limited"
    assert quiet and in_flight(redis_url, BOB[0]) == 0


def test_cancel_and_supersede_free_the_clients_place(idle_rows, redis_url, settings):
    settings.STEER_MAX_IN_FLIGHT = 1

    async def scenario():
        first, second = await connect(client=ALICE), await connect(client=ALICE)
        # a slider drag on one socket: each steer supersedes the last, never over the cap
        for gen in range(5):
            await first.send_json_to(idle(gen))
        assert await first.receive_nothing(timeout=0.3)
        await second.send_json_to(idle("x"))
        refused = await second.receive_json_from(timeout=5)
        await first.send_json_to({"type": "cancel", "gen": 4})
        assert await first.receive_nothing(timeout=0.3)
        await second.send_json_to(idle("y"))
        taken = await second.receive_nothing(timeout=0.3)
        counted = in_flight(redis_url, ALICE[0])
        for comm in (first, second):
            await comm.disconnect(timeout=5)
        return refused, taken, counted

    refused, taken, counted = async_to_sync(scenario)()
    assert refused["code"] == "rate_limited" and refused["gen"] == "x"
    assert taken and counted == 1


def test_finished_and_failed_runs_stop_counting(idle_rows, celery_worker_proc, redis_url, settings):
    async def scenario():
        comm = await connect(client=ALICE)
        for gen in range(3):  # one past the cap, one after the other: each released at done
            await comm.send_json_to(steer(gen, prompt=f"Finished {gen}", max_new_tokens=3))
            frames = await collect(comm, gen)
            assert frames[-1]["type"] == "done", frames[-1]
        finished = in_flight(redis_url, ALICE[0])
        # Short only now: a loaded worker may take more than a second to start the runs above.
        settings.STEER_START_TIMEOUT_S = 1.0
        await comm.send_json_to(idle("late"))  # no worker takes it within the timeout
        failed = await collect(comm, "late", timeout=10)
        await comm.disconnect(timeout=5)
        return finished, failed

    finished, failed = async_to_sync(scenario)()
    assert finished == 0
    assert failed[-1]["type"] == "error" and "no worker took" in failed[-1]["message"]
    assert in_flight(redis_url, ALICE[0]) == 0


def test_over_http_past_the_cap_it_answers_429_with_the_websockets_message(
    idle_rows, celery_worker_proc, redis_url, settings
):
    from explorer.asgi import application

    settings.STEER_MAX_IN_FLIGHT = 1
    address = ("127.0.0.1", 40003)
    body = {"model": "demo", "prompt": "Over HTTP", "max_new_tokens": 3, "seed": 5}

    async def scenario():
        transport = httpx.ASGITransport(app=application, client=address)
        holder, other = await connect(client=address), await connect(client=address)
        await holder.send_json_to(idle(1))
        assert await holder.receive_nothing(timeout=0.3)
        await other.send_json_to(idle(2))
        ws_refused = await other.receive_json_from(timeout=5)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            refused = await c.post("/api/v1/steer", json=body)
            await holder.send_json_to({"type": "cancel", "gen": 1})
            assert await holder.receive_nothing(timeout=0.3)
            ok = await c.post("/api/v1/steer", json=body, timeout=60)
        for comm in (holder, other):
            await comm.disconnect(timeout=5)
        return ws_refused, refused, ok

    ws_refused, refused, ok = async_to_sync(scenario)()
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" == ws_refused["code"]
    assert error["message"] == ws_refused["message"]
    assert error["message"].startswith("too many generations at once: at most 1 in flight")
    assert ok.status_code == 200, ok.text
    assert in_flight(redis_url, address[0]) == 0  # the finished HTTP run released its place
