"""workers/warmup.py: a live worker loads its models and SAEs when it starts, and says so."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from celery.utils.nodenames import worker_direct

from explorer.activations import services as activation_services
from workers.warmup import WARM_MAP, live_models, send_warm_up, warm_up


def test_the_live_queues_name_the_models_to_warm():
    assert live_models(["index", "live.demo", "explain", "live.gpt2-small"]) == [
        "demo",
        "gpt2-small",
    ]


class _Worker:
    """The part of a starting Celery worker that send_warm_up reads; records what it sends."""

    def __init__(self, queues: list[str]):
        self.hostname = "batch@host"
        self.sent: list[tuple[str, str]] = []
        self.app = SimpleNamespace(
            amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues)),
            send_task=lambda name, queue: self.sent.append((name, queue.name)),
        )


def test_an_index_worker_compiles_the_map_at_start_on_its_own_queue(settings):
    settings.INDEX_WARM_MAP = True
    worker = _Worker(["index", "explain"])
    send_warm_up(sender=worker)
    assert worker.sent == [(WARM_MAP, worker_direct("batch@host").name)]


def test_the_map_warm_up_is_a_task_of_the_worker_app():
    import workers.index  # noqa: F401 (registers the index queue's tasks)
    from workers.celery import app

    assert WARM_MAP in app.tasks


def test_no_map_warm_up_when_it_is_off_or_the_worker_does_not_index(settings):
    settings.INDEX_WARM_MAP = False
    worker = _Worker(["index"])
    send_warm_up(sender=worker)
    settings.INDEX_WARM_MAP = True
    explain_only = _Worker(["explain"])
    send_warm_up(sender=explain_only)
    assert worker.sent == explain_only.sent == []


@pytest.mark.django_db
def test_warming_loads_the_models_saes_and_says_it_is_ready():
    from workers import resident
    from workers.registration import sae_register_from_specs

    sae_register_from_specs(model_spec="demo", sae_spec="demo")
    activation_services.model_warm_state_set(model_slug="demo", state="")
    warm_up("demo")
    assert activation_services.model_warm_state(model_slug="demo") == "ready"
    assert "demo" in resident._models and "demo" in resident._models["demo"].saes


@pytest.mark.django_db
def test_warming_a_model_without_saes_does_nothing():
    warm_up("nothing-here")
    assert activation_services.model_warm_state(model_slug="nothing-here") is None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_restarted_live_worker_warms_its_model_without_being_asked(celery_worker_proc):
    from workers.registration import sae_register_from_specs

    sae_register_from_specs(model_spec="demo", sae_spec="demo")
    activation_services.model_warm_state_set(model_slug="demo", state="")
    celery_worker_proc.stop()
    celery_worker_proc.start()
    deadline = time.monotonic() + 120
    while activation_services.model_warm_state(model_slug="demo") != "ready":
        assert time.monotonic() < deadline, "the worker did not warm live.demo"
        time.sleep(0.5)
