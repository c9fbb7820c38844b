"""GET /api/v1/search (the Search JSON contract) and the /search/ page."""

from __future__ import annotations

import html

import pytest

from explorer.explanations.models import Explanation
from tests.builders import build_indexed_sae, make_language_model, make_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    built = build_indexed_sae(d_sae=32)
    Explanation.objects.create(feature=built.features[3], text="the river bank", method="offline")
    Explanation.objects.create(
        feature=built.features[4], text="<img src=x onerror=alert(1)> tags", method="offline"
    )
    return built


def test_search_json_follows_the_contract(client, indexed):
    body = client.get("/api/v1/search", {"q": "river bank", "model": "tiny", "sae": "res-1"}).json()
    assert body["items"][0] == {
        "model": "tiny",
        "sae": "res-1",
        "index": 3,
        "explanation": "the river bank",
        "density": indexed.features[3].density,
        "max_activation": indexed.features[3].max_activation,
        "url": "/tiny/res-1/3/",
        "match": "explanation",
        "activation": None,  # text searches only
    }


def test_search_accepts_a_hash_index(client, indexed):
    items = client.get("/api/v1/search", {"q": "#12"}).json()["items"]
    assert [(i["index"], i["match"]) for i in items] == [(12, "index")]


def test_search_errors_are_json(client, indexed):
    response = client.get("/api/v1/search", {"q": ""})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_query"
    assert client.get("/api/v1/search", {"q": "x", "model": "nope"}).status_code == 404


def test_the_search_page_lists_hits_with_links(client, indexed):
    response = client.get("/search/", {"q": "river"})
    assert response.status_code == 200
    assert b'href="/tiny/res-1/3/"' in response.content
    assert b'value="river"' in response.content


def test_the_search_page_escapes_explanations(client, indexed):
    response = client.get("/search/", {"q": "onerror"})
    assert b"&lt;img src=x onerror=alert(1)&gt;" in response.content
    assert b"<img src=x" not in response.content


def test_the_search_page_scope_select_keeps_the_sae(client, indexed):
    response = client.get("/search/", {"q": "#3", "scope": "tiny/res-1"})
    assert b'href="/tiny/res-1/3/"' in response.content
    assert b'value="tiny/res-1" selected' in response.content


def test_the_search_page_shows_errors_as_messages(client, indexed):
    response = client.get("/search/", {"q": "#1", "sae": "res-1"})
    assert response.status_code == 400
    assert b"Give the model with the SAE" in response.content


def test_a_text_search_among_several_models_links_each_model(client, indexed):
    make_sae(make_language_model(slug="other", source="other-src"), slug="res-1")
    response = client.get("/search/", {"q": "text:a <b>"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "choose the model" in body
    assert 'href="/search/?q=text%3Aa+%3Cb%3E&amp;model=other&amp;mode=auto"' in body
    assert 'href="/search/?q=text%3Aa+%3Cb%3E&amp;model=tiny&amp;mode=auto"' in body


def test_a_text_search_among_several_models_is_a_400_listing_them(client, indexed):
    make_sae(make_language_model(slug="other", source="other-src"), slug="res-1")
    response = client.get("/api/v1/search", {"q": "text:hi", "limit": 3})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["models"]) == ("choose_model", ["other", "tiny"])
    assert error["choices"][0] == {
        "model": "other",
        "url": "/api/v1/search?q=text%3Ahi&limit=3&model=other",
    }


def test_a_text_search_over_too_many_saes_is_a_400(client, indexed, settings):
    settings.EXPLORER_TEXT_SEARCH_MAX_SAES = 1
    make_sae(indexed.sae.model, slug="res-2", source="another")
    response = client.get("/api/v1/search", {"q": "text:hi", "model": "tiny"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_saes"


def test_group_by_sae_groups_any_search(client, indexed):
    other = make_sae(indexed.sae.model, slug="res-2", source="another", layer=0)
    build_indexed_sae(sae=other, d_sae=other.d_sae)
    body = client.get("/api/v1/search", {"q": "#5", "model": "tiny", "group": "sae"}).json()
    assert [(g["sae"], g["url"], [i["index"] for i in g["items"]]) for g in body["groups"]] == [
        ("res-1", "/tiny/res-1/", [5]),
        ("res-2", "/tiny/res-2/", [5]),
    ]
    assert client.get("/api/v1/search", {"q": "#5"}).json()["groups"] is None


def test_the_empty_search_page_renders(client, db):
    assert client.get("/search/").status_code == 200


@pytest.mark.parametrize("limit", ["-1", "0", "101", "1e3"])
def test_a_limit_outside_1_to_100_is_a_422_naming_it(client, indexed, limit):
    response = client.get("/api/v1/search", {"q": "bank", "limit": limit})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("query.limit: ")


@pytest.mark.parametrize("limit", ["-1", "0", "101", "many"])
def test_the_search_page_refuses_a_bad_limit_by_name(client, indexed, limit):
    response = client.get("/search/", {"q": "bank", "limit": limit})
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert f"limit must be a whole number from 1 to 100; got {limit!r}." in body


def test_a_parameter_the_search_does_not_take_is_a_422_naming_it(client, indexed):
    response = client.get("/api/v1/search", {"q": "bank", "order": "evil"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("query.order: unknown parameter")
