"""Evaluation rows (explorer/saes/evaluations.py): which held-out text, checks, storing."""

from __future__ import annotations

import math

import pytest

from explorer.saes import evaluations as svc
from explorer.saes.models import IndexRun, SAEEvaluation
from tests.builders import make_language_model, make_sae

pytestmark = pytest.mark.django_db


def test_a_demo_indexed_sae_is_evaluated_on_the_demo_held_out_split():
    sae = make_sae()
    IndexRun.objects.create(sae=sae, corpus="demo", tokens=200_000, status="done")
    assert svc.default_corpus(sae=sae) == ("demo:val", 0)


def test_another_corpus_is_read_after_the_tokens_its_index_used(tmp_path):
    doc = tmp_path / "a.txt"
    doc.write_text("text")
    sae = make_sae()
    IndexRun.objects.create(sae=sae, corpus=str(doc), tokens=1234, status="done")
    IndexRun.objects.create(sae=sae, corpus="hf:other", tokens=99, status="failed")
    assert svc.default_corpus(sae=sae) == (str(doc), 1234)
    row = svc.evaluation_create(sae=sae, tokens=10)
    assert (row.corpus, row.skip_tokens, row.status) == (str(doc), 1234, "queued")


def test_an_unindexed_sae_off_the_demo_model_needs_a_named_corpus():
    sae = make_sae()
    with pytest.raises(svc.EvaluationError, match="--corpus"):
        svc.evaluation_create(sae=sae)
    assert not SAEEvaluation.objects.exists()
    demo = make_sae(make_language_model(slug="demo", source="demo"), slug="d")
    assert svc.evaluation_create(sae=demo).corpus == "demo:val"


@pytest.mark.parametrize("tokens", [0, -1, True, svc.MAX_TOKENS + 1])
def test_it_rejects_a_bad_token_count(tokens):
    with pytest.raises(svc.EvaluationError, match="--tokens"):
        svc.evaluation_create(sae=make_sae(), corpus="demo:val", tokens=tokens)


def test_it_rejects_an_unreadable_corpus(tmp_path):
    with pytest.raises(svc.EvaluationError, match="does not exist") as e:
        svc.evaluation_create(sae=make_sae(), corpus=str(tmp_path / "nope.txt"))
    assert e.value.code == "bad_corpus"


def test_an_undefined_figure_is_stored_as_null():
    row = svc.evaluation_create(sae=make_sae(), corpus="demo:val", tokens=10)
    svc.evaluation_store(
        evaluation=row, metrics={"tokens": 9, "l0": 3.0, "loss_recovered": math.nan}, seconds=1.5
    )
    row.refresh_from_db()
    assert row.status == "done" and row.metrics == {"tokens": 9, "l0": 3.0, "loss_recovered": None}


def test_only_a_queued_evaluation_can_be_claimed():
    row = svc.evaluation_create(sae=make_sae(), corpus="demo:val", tokens=10)
    assert svc.evaluation_claim(evaluation_id=row.pk).status == "running"
    assert svc.evaluation_claim(evaluation_id=row.pk) is None
    assert svc.evaluation_claim(evaluation_id=row.pk + 1000) is None
