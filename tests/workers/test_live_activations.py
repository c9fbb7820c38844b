"""workers/live_activations.py: activations of the demo SAE on a text, in-process (the plain
function) and as a task on the live.demo queue of a real worker; the top features of a text in
several SAEs of the demo model at once."""

from __future__ import annotations

import os

import pytest

from workers.live_activations import activations_for_text, top_features_per_sae
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


def test_top_features_per_sae_equal_each_sae_tested_alone(demo, deep_sae_path):
    deep = attached_sae("demo", deep_sae_path)
    assert deep.lm is demo.lm  # one resident copy of the model
    text = "The river bank was full of water."
    together = top_features_per_sae([deep, demo], text, top_k=5)
    alone = [activations_for_text(att, text, index=None, top_k=5) for att in (deep, demo)]
    assert together == alone
    assert all(answer["top_features"] for answer in together)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_model_task_answers_per_sae_in_the_order_given(celery_worker_proc, demo_two_saes):
    from workers.live_activations import model_text_activations

    demo_sae, deep = demo_two_saes
    reply = model_text_activations.apply_async(
        kwargs={"sae_ids": [deep.pk, demo_sae.pk], "text": "The cat sat.", "top_k": 3},
        queue="live.demo",
    ).get(timeout=120)
    assert [r["sae_id"] for r in reply["results"]] == [deep.pk, demo_sae.pk]
    assert all(0 < len(r["top_features"]) <= 3 for r in reply["results"])
    gone = model_text_activations.apply_async(
        kwargs={"sae_ids": [deep.pk, deep.pk + 999], "text": "x"}, queue="live.demo"
    ).get(timeout=60)
    assert gone["code"] == "not_found"


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
