"""GET /api/v1/search (the Search JSON contract) and the /search/ page."""

from __future__ import annotations

import pytest

from explorer.explanations.models import Explanation
from tests.builders import build_indexed_sae, make_sae

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
    make_sae(indexed.sae.model, slug="res-2", source="another")  # two SAEs: "text:" must name one
    response = client.get("/search/", {"q": "text:hello"})
    assert response.status_code == 400
    assert b"choose one model and SAE" in response.content


def test_the_empty_search_page_renders(client, db):
    assert client.get("/search/").status_code == 200
