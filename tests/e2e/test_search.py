"""The search box on every page finds features by index and by explanation (real browser)."""

from __future__ import annotations

import pytest

from explorer.explanations.services import explanation_create
from tests.builders import build_indexed_sae


@pytest.fixture
def indexed(transactional_db):
    built = build_indexed_sae(d_sae=48, examples_per_feature=3, context=20)
    explanation_create(
        feature=built.features[7], text="rivers, lakes and other bodies of water", method="human"
    )
    return built


def _search(browser_page, live_server_url, query: str):
    page = browser_page.page
    page.goto(f"{live_server_url}/")
    page.fill("#site-search-q", query)
    page.press("#site-search-q", "Enter")
    page.wait_for_load_state("networkidle")
    return page


def test_searching_an_index_finds_that_feature(browser_page, live_server_url, indexed):
    page = _search(browser_page, live_server_url, "#7")
    assert page.url.endswith("/tiny/res-1/7/") or page.locator('a[href="/tiny/res-1/7/"]').count()


def test_searching_explanation_words_finds_the_feature(browser_page, live_server_url, indexed):
    page = _search(browser_page, live_server_url, "lakes")
    assert page.locator('a[href="/tiny/res-1/7/"]').count() >= 1
    assert "bodies of water" in page.content()
