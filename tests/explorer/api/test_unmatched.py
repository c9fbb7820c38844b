"""URLs under /api/v1/ that match no endpoint answer JSON, never one of the browser's pages."""

from __future__ import annotations

import pytest

from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


def test_get_with_a_trailing_slash_redirects_to_the_endpoint(client):
    response = client.get("/api/v1/models/")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/models"


def test_the_redirect_keeps_the_query_string(client):
    response = client.get("/api/v1/search/?q=bank&limit=3")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/search?q=bank&limit=3"


def test_following_the_redirect_gives_the_endpoints_json(client):
    build_indexed_sae(d_sae=8)
    response = client.get("/api/v1/models/tiny/saes/res-1/features/3/", follow=True)
    assert response.status_code == 200
    assert response.json()["index"] == 3


def test_head_with_a_trailing_slash_redirects_too(client):
    assert client.head("/api/v1/health/").status_code == 301


def test_a_write_with_a_trailing_slash_is_a_json_404_naming_the_url_without_it(client):
    response = client.post("/api/v1/lists/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": {
            "message": "API URLs have no trailing slash: POST /api/v1/lists",
            "code": "trailing_slash",
        }
    }


def test_an_unknown_api_url_is_a_json_404_not_a_page(client):
    for url in ("/api/v1/nope", "/api/v1/nope/", "/api/v1/a/b/c/", "/api/v1/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found", url


def test_the_api_root_without_a_slash_ends_in_json_too(client):
    response = client.get("/api/v1", follow=True)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_openapi_description_says_urls_have_no_trailing_slash(client):
    info = client.get("/api/v1/openapi.json").json()["info"]
    assert "no trailing slash" in info["description"]
