"""`manage.py demo`'s first-start hook queues the demo SAE's evaluation when it has none."""

from __future__ import annotations

import io

from explorer.core.management.commands.demo import register_demo_sae_if_needed
from explorer.saes.models import Feature, SAEEvaluation
from tests.builders import make_evaluation


def test_an_indexed_demo_sae_without_metrics_gets_an_evaluation_queued(demo_rows):
    _, sae = demo_rows
    Feature.objects.create(sae=sae, index=0)
    out = io.StringIO()
    register_demo_sae_if_needed(out)
    row = SAEEvaluation.objects.get(sae=sae)
    assert (row.status, row.corpus) == ("queued", "demo:val")
    assert "Evaluating the demo SAE" in out.getvalue()


def test_an_evaluated_demo_sae_is_left_alone(demo_rows):
    _, sae = demo_rows
    Feature.objects.create(sae=sae, index=0)
    make_evaluation(sae)
    register_demo_sae_if_needed(io.StringIO())
    assert SAEEvaluation.objects.filter(sae=sae).count() == 1
