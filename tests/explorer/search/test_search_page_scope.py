"""Search from anywhere: the header box carries the page's model/SAE, and every failing search
renders the search page with a clear message and links to searches that can run."""

from __future__ import annotations

import re

import pytest

from tests.builders import build_indexed_sae, make_language_model, make_sae

pytestmark = pytest.mark.django_db

HIDDEN = re.compile(r'<input type="hidden" name="(model|sae)" value="([^"]*)">')


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=8)


def header_scope(client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200, url
    form = response.content.decode().split('class="site-search"', 1)[1].split("</form>", 1)[0]
    return dict(HIDDEN.findall(form))


def test_the_header_box_on_a_feature_page_searches_its_sae(client, indexed):
    assert header_scope(client, "/tiny/res-1/3/") == {"model": "tiny", "sae": "res-1"}


def test_the_header_box_on_an_sae_page_searches_that_sae(client, indexed):
    assert header_scope(client, "/tiny/res-1/") == {"model": "tiny", "sae": "res-1"}


def test_the_header_box_on_a_model_page_searches_the_model(client, indexed):
    assert header_scope(client, "/tiny/") == {"model": "tiny"}


def test_the_header_box_on_the_home_page_searches_everything(client, indexed):
    assert header_scope(client, "/") == {}


def test_the_header_box_on_the_search_page_keeps_its_scope(client, indexed):
    assert header_scope(client, "/search/?q=river&scope=tiny/res-1") == {
        "model": "tiny",
        "sae": "res-1",
    }


def test_the_placeholder_names_the_scope(client, indexed):
    assert b'placeholder="Search tiny/res-1:' in client.get("/tiny/res-1/3/").content


def test_a_text_search_from_an_sae_page_runs_on_that_sae(client, indexed):
    make_sae(model=indexed.sae.model, slug="res-0", source="other")  # two SAEs: the scope decides
    response = client.get("/search/", {"q": "text:the river bank", "model": "tiny", "sae": "res-1"})
    body = response.content.decode()
    # It went to the model (no worker in this test: the live-worker message), not "choose one".
    assert "choose one" not in body
    assert "No live worker serves model tiny" in body


def test_an_ambiguous_text_search_links_to_searches_that_can_run(client, indexed):
    other = make_sae(model=make_language_model(slug="other", source="x"), slug="res-0")
    response = client.get("/search/", {"q": "text:the river bank"})
    body = response.content.decode()
    assert 'role="alert"' in body and 'class="search-form"' in body
    links = re.findall(r'href="(/search/\?[^"]*)"', body)
    for slug in ("tiny", other.model.slug):
        assert any("text%3Athe+river+bank" in u and slug in u for u in links), (slug, links)


def test_an_unknown_model_offers_the_saes_that_exist_and_everywhere(client, indexed):
    response = client.get("/search/", {"q": "river", "model": "nope"})
    assert response.status_code == 404
    body = response.content.decode()
    assert "No model nope." in body
    assert "scope=tiny%2Fres-1" in body
    assert ">all SAEs</a>" in body


def test_an_sae_without_its_model_offers_the_saes_that_exist(client, indexed):
    body = client.get("/search/", {"q": "river", "sae": "res-1"}).content.decode()
    assert "Give the model with the SAE" in body
    assert "scope=tiny%2Fres-1" in body


@pytest.mark.parametrize(
    "params",
    [{"q": "a\x00b"}, {"q": "river", "model": "a\x00b"}, {"q": "river", "scope": "tiny/\x00"}],
)
def test_a_nul_character_is_a_message_not_a_server_error(client, indexed, params):
    response = client.get("/search/", params)
    assert response.status_code in (400, 404)
    assert 'role="alert"' in response.content.decode()


def test_the_api_refuses_a_nul_character_by_name(client, indexed):
    response = client.get("/api/v1/search", {"q": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_character"
    assert response.json()["error"]["message"].startswith("q contains a NUL character")


def test_a_search_within_a_model_keeps_the_model_selected(client, indexed):
    body = client.get("/search/", {"q": "river", "model": "tiny"}).content.decode()
    assert '<option value="tiny/" selected>' in body


def test_a_text_search_from_a_model_page_runs_on_its_only_sae(client, indexed):
    body = client.get("/search/", {"q": "text:the river bank", "model": "tiny"}).content.decode()
    assert "choose one" not in body
    assert "No live worker serves model tiny" in body
