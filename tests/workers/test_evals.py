"""The evaluation task (workers/evals.py) on the real stack, and its place after indexing."""

from __future__ import annotations

import time

import pytest

from explorer.saes import evaluations as svc
from explorer.saes.models import IndexRun, SAEEvaluation
from tests.builders import make_language_model, make_sae
from workers.engine.corpus import CorpusError

METRIC_KEYS = set(svc.METRIC_KEYS) | {"tokens", "loss_tokens"}


def wait_finished(pk: int, timeout: float = 180.0) -> SAEEvaluation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = SAEEvaluation.objects.get(pk=pk)
        if row.status in (SAEEvaluation.Status.DONE, SAEEvaluation.Status.FAILED):
            return row
        time.sleep(0.5)
    raise AssertionError(f"evaluation {pk} still {row.status} after {timeout} s")


def test_the_worker_computes_and_stores_the_metrics(demo_rows, celery_worker_proc):
    _, sae = demo_rows
    evaluation = svc.evaluation_request(sae=sae, tokens=2_000)  # sent on commit (autocommit)
    row = wait_finished(evaluation.pk)
    assert row.status == SAEEvaluation.Status.DONE, row.error
    assert row.corpus == "demo:val" and row.skip_tokens == 0
    assert set(row.metrics) == METRIC_KEYS
    assert 1_500 < row.metrics["tokens"] <= 2_000
    assert row.metrics["l0"] == pytest.approx(20.0, abs=0.5)
    assert row.metrics["loss_recovered"] > 0.9
    assert row.tokens_done == row.tokens_total > 0 and row.seconds > 0


def test_a_missing_or_taken_evaluation_is_skipped(demo_rows):
    from workers.evals import evaluate_sae

    _, sae = demo_rows
    assert evaluate_sae(10**9) == {"evaluation": 10**9, "skipped": True}
    evaluation = svc.evaluation_create(sae=sae, tokens=100)
    assert svc.evaluation_claim(evaluation_id=evaluation.pk) is not None
    assert evaluate_sae(evaluation.pk)["skipped"] is True  # already running elsewhere


def test_a_failure_is_recorded_on_the_row(demo_rows, tmp_path):
    from workers.evals import evaluate_sae

    _, sae = demo_rows
    doc = tmp_path / "gone.txt"
    doc.write_text("Some text.")
    evaluation = svc.evaluation_create(sae=sae, corpus=str(doc), tokens=100)
    doc.unlink()  # checked when queued, missing when run
    with pytest.raises(CorpusError, match="does not exist"):
        evaluate_sae(evaluation.pk)
    row = SAEEvaluation.objects.get(pk=evaluation.pk)
    assert row.status == SAEEvaluation.Status.FAILED and "gone.txt" in row.error


@pytest.mark.django_db
def test_a_finished_index_run_queues_an_evaluation_of_held_out_text(
    settings, django_capture_on_commit_callbacks
):
    from workers.index import _request_evaluation

    settings.SAE_EVAL_AFTER_INDEX_TOKENS = 5_000
    sae = make_sae(make_language_model(source="demo"))
    run = IndexRun.objects.create(sae=sae, corpus="demo", tokens=200, status="done")
    with django_capture_on_commit_callbacks() as sent:
        _request_evaluation(run)
    row = SAEEvaluation.objects.get(sae=sae)
    assert (row.corpus, row.skip_tokens, row.tokens, row.status) == ("demo:val", 0, 5_000, "queued")
    assert len(sent) == 1


@pytest.mark.django_db
def test_no_evaluation_follows_indexing_when_it_is_switched_off(
    settings, django_capture_on_commit_callbacks
):
    from workers.index import _request_evaluation

    settings.SAE_EVAL_AFTER_INDEX_TOKENS = 0
    sae = make_sae()
    run = IndexRun.objects.create(sae=sae, corpus="demo", tokens=200, status="done")
    with django_capture_on_commit_callbacks() as sent:
        _request_evaluation(run)
    assert not SAEEvaluation.objects.exists() and not sent
