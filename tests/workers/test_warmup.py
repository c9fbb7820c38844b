"""workers/warmup.py: a live worker loads its models and SAEs when it starts, and says so."""

from __future__ import annotations

import time

import pytest

from explorer.activations import services as activation_services
from workers.warmup import live_models, warm_up


def test_the_live_queues_name_the_models_to_warm():
    assert live_models(["index", "live.demo", "explain", "live.gpt2-small"]) == [
        "demo",
        "gpt2-small",
    ]


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
