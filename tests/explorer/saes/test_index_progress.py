"""/ws/index/<sae>/: index-run progress pushed through the real Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from explorer.saes import indexing as svc
from explorer.saes.models import IndexRun
from tests.builders import make_sae
from tests.explorer.websocket import WebsocketCommunicator

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LOCAL = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


def _application():
    from explorer.asgi import application

    return application


def test_a_page_sees_the_latest_run_then_each_progress_event(redis_url):
    sae = make_sae()
    run = IndexRun.objects.create(
        sae=sae, corpus="demo", tokens=1000, tokens_total=1000, status=IndexRun.Status.RUNNING
    )

    async def scenario():
        ws = WebsocketCommunicator(_application(), f"/ws/index/{sae.pk}/", headers=LOCAL)
        assert (await ws.connect(timeout=5))[0]
        first = await ws.receive_json_from(timeout=5)
        await sync_to_async(IndexRun.objects.filter(pk=run.pk).update)(tokens_done=400)
        await sync_to_async(svc.publish_progress)(run_id=run.pk, min_interval=0)
        second = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return first, second

    first, second = async_to_sync(scenario)()
    assert first["type"] == "progress" and first["run"] == run.pk and first["tokens_done"] == 0
    assert second["tokens_done"] == 400 and second["status"] == "running"


def test_progress_rolls_shards_up_into_the_run(redis_url):
    sae = make_sae()
    run = svc.index_run_create(sae=sae, corpus="demo", tokens=1000, shards=2, context=32)
    shards = list(run.shard_rows.order_by("index"))
    svc.shard_progress(shard=shards[0], done=300, total=500)
    svc.shard_progress(shard=shards[1], done=100, total=500)
    run.refresh_from_db()
    assert (run.tokens_done, run.tokens_total) == (400, 1000)


def test_a_shard_is_claimed_by_one_worker_only():
    sae = make_sae()
    run = svc.index_run_create(sae=sae, corpus="demo", tokens=1000, context=32)
    assert svc.shard_claim(run_id=run.pk, index=0, worker="a") is not None
    assert svc.shard_claim(run_id=run.pk, index=0, worker="b") is None
    run.refresh_from_db()
    assert run.status == "running"
