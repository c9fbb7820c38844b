"""LLM explain and score jobs run in-process against a local OpenAI-compatible server:
results, tokens used, and every kind of failure stored with its reason, never a made-up
explanation or score; failures are queued again by explain_retry."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from explorer.explanations import services
from explorer.explanations.methods import llm
from explorer.explanations.models import ExplainJob, Explanation
from tests.builders import build_indexed_sae
from tests.explorer.explanations.llm_server import Reply, completion

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=24, examples_per_feature=4)


@pytest.fixture
def endpoint(fake_llm):
    return llm.Endpoint(
        base_url=fake_llm.base_url, model="test-model", timeout_s=0.5, max_retries=1, backoff_s=0.0
    )


def queue(indexed, fake_llm, indices):
    # No worker here: the rows are made, the tasks (sent on commit) never are in a `db` test.
    return services.explain_jobs_create(
        sae=indexed.sae, indices=indices, base_url=fake_llm.base_url, model="test-model"
    )


def run(job, endpoint):
    return services.explain_job_run(job_id=job.pk, endpoint=endpoint, sleep=lambda s: None)


def test_a_job_stores_the_explanation_its_llm_score_and_the_tokens_used(
    indexed, fake_llm, endpoint
):
    [job] = queue(indexed, fake_llm, [13])
    run(job, endpoint)
    job.refresh_from_db()
    e = Explanation.objects.get(method="llm:test-model")
    assert (job.status, job.explanation_id, job.attempts) == ("done", e.pk, 1)
    assert e.text == 'the token " of"'  # the fake model names the marked token
    assert (job.prompt_tokens, job.completion_tokens) == (11, 3)
    score_job = ExplainJob.objects.get(kind="score")
    assert score_job.status == "done" and score_job.prompt_tokens > 0
    assert e.score_method == "detection:llm:test-model"
    assert e.score_sample_size == len(fake_llm.requests) - 1  # one judge call per context
    assert e.score > 0.5
    prompt = fake_llm.requests[0]["messages"][-1]["content"]
    assert "<< of>>" in prompt and "Tokens it promotes" in prompt


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([Reply(500, "boom")] * 2, "HTTP 500"),
        ([Reply(429, "{}", {"Retry-After": "0"})] * 2, "429"),
        ([Reply(body=completion("x"), delay_s=1.2)] * 2, "timed out"),
        ([Reply(200, "<html>not json")], "malformed JSON"),
        ([Reply(body=completion(""))], "empty explanation"),
    ],
)
def test_a_failing_endpoint_is_a_stored_failure_with_no_explanation(
    indexed, fake_llm, endpoint, replies, reason
):
    [job] = queue(indexed, fake_llm, [13])
    fake_llm.script = list(replies)
    run(job, endpoint)
    job.refresh_from_db()
    assert job.status == "failed" and job.retryable
    assert reason in job.reason
    assert not Explanation.objects.filter(method__startswith="llm").exists()


def test_a_failing_judge_leaves_the_explanation_unscored(indexed, fake_llm, endpoint):
    [job] = queue(indexed, fake_llm, [13])
    fake_llm.script = [
        Reply(body=completion("commas")),
        Reply(body=completion("Yes")),
        Reply(500, "x"),
        Reply(500, "x"),
    ]
    run(job, endpoint)
    e = Explanation.objects.get(method="llm:test-model")
    assert (e.score, e.score_method, e.score_sample_size) == (None, "", None)
    score_job = ExplainJob.objects.get(kind="score")
    assert score_job.status == "failed" and "HTTP 500" in score_job.reason
    assert score_job.prompt_tokens == 11  # the one judge answer that came back was counted


def test_a_refusal_is_stored_as_not_retryable(indexed, fake_llm, endpoint):
    [job] = queue(indexed, fake_llm, [13])
    fake_llm.script = [Reply(401, {"error": "bad key"})]
    run(job, endpoint)
    job.refresh_from_db()
    assert job.status == "failed" and not job.retryable and "401" in job.reason
    assert services.explain_jobs_retry() == []


def test_retry_queues_failures_again_and_a_second_run_succeeds(indexed, fake_llm, endpoint):
    [job] = queue(indexed, fake_llm, [13])
    fake_llm.script = [Reply(503, "down")] * 2
    run(job, endpoint)
    call_command("explain_retry", "tiny/res-1")
    job.refresh_from_db()
    assert job.status == "queued"
    run(job, endpoint)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.reason) == ("done", 2, "")
    assert Explanation.objects.filter(method="llm:test-model").count() == 1


def test_a_job_runs_once(indexed, fake_llm, endpoint):
    [job] = queue(indexed, fake_llm, [13])
    run(job, endpoint)
    assert run(job, endpoint) is None  # a second delivery of the same message
    assert Explanation.objects.filter(method="llm:test-model").count() == 1


def test_explain_sae_queues_a_selection_or_a_limit_of_live_features(indexed, fake_llm, capsys):
    call_command("explain_sae", "tiny/res-1", features=[1, 2, 3], base_url=fake_llm.base_url)
    assert sorted(ExplainJob.objects.values_list("feature__index", flat=True)) == [1, 2, 3]
    call_command("explain_sae", "tiny/res-1", limit=5, base_url=fake_llm.base_url)
    # features 1-3 are already queued; dead ones (0, 10, 20) are never explained
    assert sorted(ExplainJob.objects.values_list("feature__index", flat=True)) == [1, 2, 3, 4, 5]
    assert "queued 2 job(s)" in capsys.readouterr().out


def test_explain_sae_without_an_endpoint_is_a_clear_error(indexed):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="EXPLAINER_BASE_URL"):
        call_command("explain_sae", "tiny/res-1")


def test_score_only_scores_offline_labels_with_the_proxy(indexed):
    services.explanation_create(
        feature=indexed.features[13], text='" of" · promotes " America"', method="offline"
    )
    services.explanation_create(feature=indexed.features[14], text="prose only", method="offline")
    call_command("explain_sae", "tiny/res-1", score_only=True)
    for job in ExplainJob.objects.all():
        services.explain_job_run(job_id=job.pk)
    good = Explanation.objects.get(feature=indexed.features[13])
    assert good.score_method == "detection:offline" and good.score == pytest.approx(1.0)
    failed = ExplainJob.objects.get(feature=indexed.features[14])
    assert failed.status == "failed" and "quoted tokens" in failed.reason and not failed.retryable
