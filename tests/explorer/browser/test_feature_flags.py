"""What the feature page says a feature is when its top token would mislead: dense features
and features that fire at document start (flags from the stored density and top examples),
and each explanation's method in words."""

from __future__ import annotations

import pytest

from explorer.browser.selectors import feature_page_get
from explorer.explanations.services import explanation_create
from explorer.saes.models import Feature
from tests.builders import example_rows, store_examples

pytestmark = pytest.mark.django_db


def flags(index: int) -> list[str]:
    page = feature_page_get(model_slug="tiny", sae_slug="res-1", index=index)
    return [flag for flag, _ in page.flags]


def at_document_start(feature: Feature) -> None:
    """Every top example of `feature` peaks on the first token of a document."""
    rows = example_rows(feature.sae)
    for r in rows:
        if r.feature_index == feature.index and r.kind == "top":
            r.max_position = r.offset = 0
    store_examples(feature.sae, rows)


def test_a_feature_firing_on_over_a_tenth_of_tokens_is_flagged_dense(indexed):
    Feature.objects.filter(pk=indexed.features[3].pk).update(density=0.28)
    assert flags(3) == ["dense"]


def test_a_sparse_feature_is_not_flagged(indexed):
    Feature.objects.filter(pk=indexed.features[3].pk).update(density=0.01)
    assert flags(3) == []


def test_a_feature_whose_top_examples_peak_at_document_start_is_flagged(indexed):
    Feature.objects.filter(pk=indexed.features[3].pk).update(density=0.01)
    at_document_start(indexed.features[3])
    assert flags(3) == ["document start"]


def test_a_peak_right_after_an_end_of_text_token_is_at_document_start(db):
    from tests.builders import build_indexed_sae, make_language_model, make_sae

    model = make_language_model(vocab=["<|endoftext|>", " William", " the"])
    built = build_indexed_sae(sae=make_sae(model), d_sae=4)
    feature = built.features[1]
    Feature.objects.filter(pk=feature.pk).update(density=0.28)
    rows = example_rows(built.sae)
    for r in rows:
        if r.feature_index == 1 and r.kind == "top":
            r.token_ids, r.values = [0, 1, 2, 2], [0.0, r.max_value, 0.0, 0.0]
            r.max_position, r.offset = 1, 300
    store_examples(built.sae, rows)
    assert flags(1) == ["dense", "document start"]


def test_a_dead_feature_gets_no_flags(indexed):
    assert flags(0) == []


def test_the_page_says_each_flag_in_words(client, indexed):
    Feature.objects.filter(pk=indexed.features[3].pk).update(density=0.28)
    at_document_start(indexed.features[3])
    body = client.get("/tiny/res-1/3/").content.decode()
    assert 'data-flag="dense"' in body and "fires on more than 10% of tokens" in body
    assert 'data-flag="document start"' in body and "first token of a document" in body


def test_the_offline_method_is_named_in_words(client, indexed):
    explanation_create(feature=indexed.features[3], text='" cat"', method="offline")
    body = client.get("/tiny/res-1/3/").content.decode()
    assert "offline label" in body
    assert "from top tokens and logits, no language model" in body


def test_densities_are_percentages_on_the_feature_page(client, indexed):
    Feature.objects.filter(pk=indexed.features[3].pk).update(density=0.000417)
    body = client.get("/tiny/res-1/3/").content.decode()
    assert "0.0417%" in body
