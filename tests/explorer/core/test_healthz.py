"""/healthz: database, Redis and worker queues, 503 when something required is down."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _poll_healthz(client, status: int, timeout: float = 30.0):
    """The first /healthz response with `status` (the worker's queues take a moment to show)."""

    def answers():
        response = client.get("/healthz")
        return response if response.status_code == status else None

    return wait_until(
        answers,
        timeout=timeout,
        interval=0.5,
        message=lambda: f"/healthz is not {status}: {client.get('/healthz').content!r}",
    )


def test_healthz_is_200_with_every_queue_consumed(client, celery_worker_proc):
    response = _poll_healthz(client, 200)
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["missing_queues"] == []
    for queue in ("index", "explain", "live.demo"):
        assert body["queues"][queue], queue


def test_healthz_turns_503_when_the_worker_dies_and_200_when_it_returns(client, celery_worker_proc):
    assert _poll_healthz(client, 200).status_code == 200
    celery_worker_proc.stop()

    down = _poll_healthz(client, 503)
    assert down.status_code == 503
    assert down.json()["missing_queues"] == ["index", "live.*"]
    assert down.json()["database"] == "ok"

    celery_worker_proc.start()
    assert _poll_healthz(client, 200).status_code == 200


def test_healthz_is_never_cached_by_clients(client, celery_worker_proc):
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"]
