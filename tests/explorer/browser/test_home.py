"""The home page: models and SAEs with counts, recent and random features."""

from __future__ import annotations

import pytest

from explorer.explanations.services import explanation_create

pytestmark = pytest.mark.django_db


def test_it_lists_models_and_their_saes_with_feature_counts(client, indexed):
    body = client.get("/").content.decode()
    assert '<a href="/tiny/">tiny</a>' in body
    assert 'href="/tiny/res-1/"' in body
    assert "32 features · 28 live" in body


def test_it_shows_random_live_features_with_a_token_strip(client, indexed):
    body = client.get("/").content.decode()
    assert "Random features" in body
    assert 'data-chart="tokens"' in body
    assert 'class="token-strip' in body


def test_recent_features_are_the_most_recently_explained(client, indexed):
    explanation_create(feature=indexed.features[7], text="cats on mats", method="human")
    body = client.get("/").content.decode()
    recent = body.split("Recent features")[1].split("Random features")[0]
    assert "#7" in recent and "cats on mats" in recent


def test_an_empty_site_says_how_to_add_a_model(client):
    body = client.get("/").content.decode()
    assert "No models yet" in body


def test_every_page_has_the_search_box(client):
    body = client.get("/").content.decode()
    assert '<form class="site-search" role="search" method="get" action="/search/">' in body
    assert 'name="q"' in body


def test_an_sae_being_indexed_shows_its_progress(client, indexed):
    from explorer.saes.models import IndexRun

    IndexRun.objects.create(
        sae=indexed.sae,
        corpus="demo",
        tokens=1000,
        tokens_total=1000,
        tokens_done=400,
        status=IndexRun.Status.RUNNING,
    )
    assert "indexing 40%" in client.get("/").content.decode()


def test_the_search_box_keeps_the_query_on_the_search_page_only(client, indexed):
    assert 'name="q" value=""' in client.get("/tiny/res-1/?q=cat").content.decode()
