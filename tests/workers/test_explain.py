"""The `explain` queue end to end: `manage.py explain_sae` queues jobs that the real Celery
worker runs against a local OpenAI-compatible server on loopback (its URL travels on the job
rows), and the offline proxy scores the offline labels of the indexed demo SAE."""

from __future__ import annotations

import io
import json
import random
import statistics

import pytest
from django.core.management import call_command

from explorer.explanations.methods.offline import quoted_tokens
from explorer.explanations.models import ExplainJob, Explanation
from explorer.saes.models import IndexRun
from tests.builders import build_indexed_sae
from tests.explorer.explanations.llm_server import Reply
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(420),
]


def wait_for_jobs(timeout: float = 120.0) -> None:
    wait_until(
        lambda: not ExplainJob.objects.filter(status__in=("queued", "running")).exists(),
        timeout=timeout,
        interval=0.2,
        message=lambda: str(list(ExplainJob.objects.values("id", "status", "reason"))),
    )


def test_the_worker_explains_scores_and_records_tokens_and_failures(celery_worker_proc, fake_llm):
    indexed = build_indexed_sae(d_sae=16, examples_per_feature=4)
    call_command(
        "explain_sae",
        "tiny/res-1",
        features=[1, 2, 3],
        base_url=fake_llm.base_url,
        model="test-model",
    )
    wait_for_jobs()
    rows = {
        e.feature.index: e
        for e in Explanation.objects.filter(method="llm:test-model").select_related("feature")
    }
    assert sorted(rows) == [1, 2, 3]
    vocab = indexed.sae.model.vocab
    for index, e in rows.items():
        assert e.text == f'the token "{vocab[index]}"'  # the marked max token reached the prompt
        assert (
            e.score_method == "detection:llm:test-model"
            and e.score_sample_size > 0
            and e.score > 0.5
        )
    explain_jobs = ExplainJob.objects.filter(kind="explain")
    assert all(
        j.status == "done" and j.prompt_tokens == 11 and j.completion_tokens == 3
        for j in explain_jobs
    )

    fake_llm.script = [Reply(401, {"error": {"message": "invalid api key"}})]
    out = io.StringIO()
    call_command(
        "explain_sae",
        "tiny/res-1",
        features=[4],
        base_url=fake_llm.base_url,
        model="test-model",
        wait=True,
        stdout=out,
    )
    assert "done 0, failed 1" in out.getvalue() and "feature 4: HTTP 401" in out.getvalue()
    failed = ExplainJob.objects.get(feature__index=4)
    assert (
        failed.status == "failed"
        and "HTTP 401" in failed.reason
        and "invalid api key" in failed.reason
    )
    assert not Explanation.objects.filter(feature__index=4, method__startswith="llm").exists()


TEXT = (
    "the state of the union was read to the people . she said that the weather in the "
    "city would be fine , and the market rose by 3 percent on monday while the river "
    "ran high ; children played in the park and the court ruled on the case"
)
WORDS = TEXT.split()  # the corpus of tests/explorer/saes/test_index_sae.py


def test_the_offline_proxy_scores_the_demo_sae_offline_labels(celery_worker_proc, tmp_path):
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    rng = random.Random(0)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(80))}) + "\n"
            for _ in range(60)
        )
    )
    call_command(
        "index_sae", "demo/demo", corpus=str(corpus), tokens=3000, context=32, batch_size=8
    )
    run = IndexRun.objects.latest("created")
    assert run.status == "done", run.error
    offline = Explanation.objects.filter(feature__sae=sae, method="offline", feature__dead=False)
    assert offline.exists()

    call_command("explain_sae", "demo/demo", score_only=True)
    wait_for_jobs(timeout=300)
    scored = [e for e in offline.all() if e.score is not None]
    unscored_jobs = ExplainJob.objects.filter(feature__sae=sae, status="failed")
    assert all(j.reason for j in unscored_jobs)  # a failure always says why
    assert all(e.score_method == "detection:offline" and e.score_sample_size > 0 for e in scored)
    # Token-like labels (one quoted token the feature peaks on) pick out their contexts.
    token_like = [
        e for e in scored if len(quoted_tokens(e.text)) == 1 and not e.text.startswith("varied")
    ]
    assert token_like
    mean = statistics.mean(e.score for e in token_like)
    assert mean > 0.7, (mean, [(e.text, e.score) for e in token_like[:10]])
