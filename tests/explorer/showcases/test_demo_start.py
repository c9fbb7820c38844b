"""`manage.py demo` on a database indexed before showcases existed computes them once."""

from __future__ import annotations

import io

import pytest

from explorer.core.management.commands.demo import register_demo_sae_if_needed
from explorer.saes.models import Feature
from explorer.showcases import services
from explorer.showcases.models import SteeringShowcase
from tests.builders import make_evaluation
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# A demo SAE feature that makes a showcase (tests/workers/test_showcases.py).
TOP_LOGIT_IDS = [2852, 1001, 2381, 3915, 1498, 2368, 3871, 3323, 994, 4012]


def test_an_indexed_demo_without_showcases_gets_them_computed(demo_rows, celery_worker_proc):
    _, sae = demo_rows
    Feature.objects.create(
        sae=sae,
        index=318,
        max_activation=6.38,
        density=0.105,
        top_logit_ids=TOP_LOGIT_IDS,
        top_logit_values=[1.0] * 10,
    )
    out = io.StringIO()
    register_demo_sae_if_needed(out)
    assert "steering showcases" in out.getvalue()
    wait_until(lambda: SteeringShowcase.objects.filter(sae=sae).exists(), timeout=300)


def test_an_indexed_demo_with_showcases_is_left_alone(demo_rows):
    _, sae = demo_rows
    Feature.objects.create(sae=sae, index=1, max_activation=2.0, density=0.1)
    services.showcases_replace(sae=sae, rows=[services.ShowcaseRow(1, "x", 1, 1, 0, 1, "t", "d")])
    make_evaluation(sae)  # metrics exist too: nothing is left to compute
    out = io.StringIO()
    register_demo_sae_if_needed(out)
    assert out.getvalue() == ""
    assert list(SteeringShowcase.objects.filter(sae=sae).values_list("prompt", flat=True)) == ["x"]
