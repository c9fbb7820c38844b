"""The explain task bodies, run in-process (the worker runs them in
tests/workers/test_explain.py)."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from explorer.explanations import services
from explorer.explanations.models import Explanation
from tests.builders import build_indexed_sae
from workers.explain import explain_batch, explain_retry_failed

pytestmark = pytest.mark.django_db


@pytest.fixture
def score_jobs():
    indexed = build_indexed_sae(d_sae=8)
    for f in indexed.features[1:4]:
        services.explanation_create(
            feature=f, text=f'"{indexed.sae.model.vocab[f.index]}"', method="offline"
        )
    return services.score_jobs_create(sae=indexed.sae)


def test_a_batch_runs_its_jobs_and_tolerates_a_missing_one(score_jobs):
    result = explain_batch.run([j.pk for j in score_jobs] + [999_999])
    assert result == {"done": 3, "failed": 0}
    assert not Explanation.objects.filter(score__isnull=True).exists()


def test_a_batch_out_of_time_stores_the_rest_as_retryable_failures(score_jobs, monkeypatch):
    real = services.explain_job_run
    calls = []

    def run_then_time_out(*, job_id):
        calls.append(job_id)
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return real(job_id=job_id)

    # The time limit is Celery's signal, not ours: raising it here stands in for the clock.
    monkeypatch.setattr(services, "explain_job_run", run_then_time_out)
    explain_batch.run([j.pk for j in score_jobs])
    for job in score_jobs[1:]:  # the one cut short and the one never started
        job.refresh_from_db()
        assert job.status == "failed" and job.retryable and "out of time" in job.reason
    assert explain_retry_failed.run() == 2
