"""workers.health.ping: a task round trip through the real broker and a real worker."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("queue", ["index", "live.demo", "explain"])
def test_ping_round_trips_through_the_broker_on_each_queue(celery_worker_proc, queue):
    from workers.health import ping

    result = ping.apply_async(args=["hello"], queue=queue).get(timeout=30)

    assert result["pong"] == "hello"
    assert result["pid"] != os.getpid()  # ran in the worker, not here
