"""workers/live_activations.py: activations of the demo SAE on a text, in-process (the plain
function) and as a task on the live.demo queue of a real worker."""

from __future__ import annotations

import os

import pytest

from workers.live_activations import activations_for_text
from workers.resident import attached_sae


@pytest.fixture(scope="module")
def demo():
    return attached_sae("demo", "demo")


def test_one_feature_gives_one_value_per_token_without_bos(demo):
    from workers.engine.activations import feature_activations

    out = activations_for_text(demo, "The cat sat on the mat.", index=3, top_k=5)
    (row,) = feature_activations(demo, "The cat sat on the mat.", [3])
    assert out["tokens"] == row.tokens[1:]  # BOS left out
    assert len(out["values"]) == len(out["tokens"]) == len(out["token_ids"])
    assert out["values"] == pytest.approx(row.values[1:, 0].tolist(), abs=1e-3)
    assert out["max_activation"] == pytest.approx(max(out["values"]), abs=1e-3)
    assert out["top_features"] == []


def test_top_features_are_the_largest_maxima_over_the_text(demo):
    from workers.engine.activations import feature_activations

    out = activations_for_text(demo, "The river bank was full of water.", index=None, top_k=5)
    (row,) = feature_activations(demo, "The river bank was full of water.", None)
    peaks = row.values[1:].max(dim=0).values  # [d_sae]
    expected = peaks.topk(5).indices.tolist()
    assert [t["index"] for t in out["top_features"]] == expected
    assert out["top_features"][0]["max_value"] == pytest.approx(float(peaks.max()), rel=1e-5)
    assert out["values"] is None
    values = [t["max_value"] for t in out["top_features"]]
    assert values == sorted(values, reverse=True)


def test_a_text_longer_than_the_context_is_a_value_error(demo):
    with pytest.raises(ValueError, match="context"):
        activations_for_text(demo, "word " * 500, index=None, top_k=5)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_task_runs_on_the_live_queue_of_a_real_worker(celery_worker_proc):
    from workers.live_activations import text_activations
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    result = text_activations.apply_async(
        kwargs={"sae_id": sae.pk, "text": "The cat sat.", "index": 7}, queue="live.demo"
    ).get(timeout=120)
    assert len(result["values"]) == len(result["tokens"]) > 0
    missing = text_activations.apply_async(
        kwargs={"sae_id": sae.pk + 999, "text": "x"}, queue="live.demo"
    ).get(timeout=60)
    assert missing["code"] == "not_found"
    assert celery_worker_proc.pid != os.getpid()
