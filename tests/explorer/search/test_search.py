"""explorer/search/services.py search(): by index, explanation text, peak token; scopes and
errors."""

from __future__ import annotations

import pytest

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.explanations.models import Explanation
from explorer.saes.example_copy import partition_name
from explorer.saes.models import IndexRun
from explorer.search.services import ModelRequired, search
from tests.builders import build_indexed_sae, make_language_model, make_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    built = build_indexed_sae(d_sae=48, examples_per_feature=3)
    f = {x.index: x for x in built.features}
    Explanation.objects.create(
        feature=f[3], text="the river bank and its water", method="offline", score=0.5
    )
    Explanation.objects.create(
        feature=f[4], text="money held at a bank", method="offline", score=0.7
    )
    Explanation.objects.create(feature=f[5], text="cats sitting on mats", method="offline")
    Explanation.objects.create(feature=f[6], text="financial institutions, banking", method="human")
    return built


def test_hash_index_finds_that_feature(indexed):
    (hit,) = search(q="#7", model_slug="tiny", sae_slug="res-1")
    assert (hit.index, hit.match, hit.url) == (7, "index", "/tiny/res-1/7/")


def test_a_bare_number_is_an_index_too(indexed):
    assert [h.index for h in search(q="12")] == [12]


def test_an_index_beyond_the_sae_finds_nothing(indexed):
    assert search(q="#4800", model_slug="tiny", sae_slug="res-1") == []


def test_explanation_text_is_ranked_by_similarity(indexed):
    hits = search(q="bank", model_slug="tiny", sae_slug="res-1", mode="explanation")
    assert [h.index for h in hits][:2] in ([3, 4], [4, 3])
    assert {h.match for h in hits} == {"explanation"}
    assert 5 not in [h.index for h in hits]
    assert hits[0].explanation in {"the river bank and its water", "money held at a bank"}


def test_a_misspelt_explanation_still_matches(indexed):
    hits = search(q="rivr bank", mode="explanation")
    assert hits and hits[0].index == 3


def test_a_feature_with_two_matching_explanations_appears_once(indexed):
    Explanation.objects.create(feature=indexed.features[3], text="river bank again", method="human")
    indices = [h.index for h in search(q="river bank", mode="explanation")]
    assert indices.count(3) == 1


def test_token_search_finds_features_peaking_on_the_token(indexed):
    # build_indexed_sae: live feature i peaks on vocab token i % len(vocab); " dog" is token 7.
    vocab = indexed.sae.model.vocab
    assert vocab[7] == " dog"
    hits = search(q="token:dog", model_slug="tiny", sae_slug="res-1")
    expected = {i for i in range(48) if i % len(vocab) == 7 and i not in indexed.dead}
    assert {h.index for h in hits} == expected
    assert {h.match for h in hits} == {"token"}


def test_a_quoted_token_is_taken_literally(indexed):
    assert search(q='token:"dog"') == []  # no token "dog" without the space
    assert search(q='token:" dog"')


def test_auto_mode_adds_token_matches_after_explanations(indexed):
    hits = search(q="dog")
    assert hits and all(h.match == "token" for h in hits)


def test_tokens_that_look_like_markup_are_searchable(indexed):
    hits = search(q="token:<script>")
    assert {h.index for h in hits} == {9, 33} - set(indexed.dead)


def test_scope_to_another_model_excludes_these_features(indexed):
    other = make_sae(make_language_model(slug="other", source="other-src"), slug="res-1")
    build_indexed_sae(sae=other, d_sae=other.d_sae)
    assert {(h.model, h.index) for h in search(q="#2")} == {("tiny", 2), ("other", 2)}
    assert {h.model for h in search(q="#2", model_slug="other")} == {"other"}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"q": "  "}, "empty_query"),
        ({"q": "x" * 501}, "query_too_long"),
        ({"q": "bank", "mode": "fuzzy"}, "invalid_mode"),
        ({"q": "bank", "sae_slug": "res-1"}, "invalid_scope"),
    ],
)
def test_bad_queries_say_what_is_wrong(indexed, kwargs, code):
    with pytest.raises(ApplicationError) as info:
        search(**kwargs)
    assert info.value.code == code


def test_a_text_search_among_several_models_asks_which_model(indexed):
    make_sae(make_language_model(slug="other", source="other-src"), slug="res-1")
    with pytest.raises(ModelRequired) as info:
        search(q="text:hello")
    assert (info.value.code, info.value.models) == ("choose_model", ["other", "tiny"])
    assert "other, tiny" in info.value.message


def test_a_text_search_on_a_model_without_saes_says_so(indexed):
    make_language_model(slug="bare", source="bare-src")
    with pytest.raises(ApplicationError, match="no SAE"):
        search(q="text:hello", model_slug="bare")


def test_a_text_search_over_more_saes_than_allowed_is_refused_up_front(indexed, settings):
    settings.EXPLORER_TEXT_SEARCH_MAX_SAES = 1
    make_sae(indexed.sae.model, slug="res-2", source="another")
    with pytest.raises(ApplicationError) as info:
        search(q="text:hello", model_slug="tiny")
    assert info.value.code == "too_many_saes"
    assert "tiny has 2 SAEs" in info.value.message and "at most 1" in info.value.message


def test_unknown_model_or_sae_is_not_found(indexed):
    with pytest.raises(NotFound):
        search(q="bank", model_slug="nope")
    with pytest.raises(NotFound):
        search(q="bank", model_slug="tiny", sae_slug="nope")


def test_the_token_query_uses_the_peak_token_index(indexed):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")
        cur.execute(
            "EXPLAIN SELECT e.feature_index FROM saes_example e "
            "WHERE e.bin = -1 AND e.peak_token = ANY(ARRAY[7])"
        )
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("SET enable_seqscan = on")
    assert (
        f"{partition_name(indexed.sae.pk, IndexRun.objects.get(sae=indexed.sae).pk)}_peak" in plan
    )


def test_explanation_words_match_their_other_forms_and_prefixes(indexed):
    assert {h.index for h in search(q="banks", mode="explanation")} >= {3, 4, 6}  # stemming
    assert 3 in {h.index for h in search(q="riv", mode="explanation")}  # a word being typed


def test_every_word_must_match_before_typos_are_forgiven(indexed):
    hits = search(q="river water", mode="explanation")
    assert hits[0].index == 3
    assert 4 not in [h.index for h in hits]


def test_a_query_word_in_very_many_explanations_stays_bounded(indexed, monkeypatch):
    from explorer.search import services

    monkeypatch.setattr(services, "MAX_CANDIDATES", 2)
    hits = search(q="bank", mode="explanation", limit=10)
    assert 1 <= len(hits) <= 10


def test_a_query_with_every_word_misspelt_falls_back_to_trigrams(indexed):
    hits = search(q="rivver", mode="explanation")
    assert hits[0].index == 3


def test_an_sae_with_few_of_the_matches_still_gets_its_own(indexed, monkeypatch):
    from explorer.search import services

    monkeypatch.setattr(services, "SHORTLIST", 1)  # the shortlist holds only the other SAE's
    for f in indexed.features[11:16]:
        Explanation.objects.create(feature=f, text="bank", method="offline", score=1.0)
    other = make_sae(make_language_model(slug="other", source="other-src"), slug="res-1")
    theirs = build_indexed_sae(sae=other, d_sae=other.d_sae).features[2]
    Explanation.objects.create(feature=theirs, text="a bank", method="offline", score=0.0)
    hits = search(q="bank", model_slug="other", sae_slug="res-1", limit=1, mode="explanation")
    assert [(h.model, h.index) for h in hits] == [("other", 2)]
