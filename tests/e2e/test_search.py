"""The search box on every page finds features by index and by explanation; the model page's
text box lists the top features of a text in each of its SAEs (real browser)."""

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


def test_a_text_from_the_model_page_lists_the_top_features_of_each_sae(
    browser_page, live_server_url, demo_two_saes, celery_worker_proc
):
    page = browser_page.page
    page.goto(f"{live_server_url}/demo/")
    page.fill("#model-text-q", "The river bank was full of water.")
    browser_page.screenshot("model-page-text-search")
    # The page answers once the worker has (loading the model and both SAEs on first use).
    page.press("#model-text-q", "Enter", no_wait_after=True)
    page.wait_for_selector(".search-group", timeout=90_000)
    browser_page.screenshot("search-text-over-model")
    headings = page.locator(".search-group h2 a")
    assert [headings.nth(i).get_attribute("href") for i in range(2)] == [
        "/demo/demo/",
        "/demo/deep/",
    ]
    for sae in ("demo", "deep"):
        group = page.locator(".search-group", has=page.locator(f'h2 a[href="/demo/{sae}/"]'))
        assert group.locator(f'tbody a[href^="/demo/{sae}/"]').count() >= 1
    assert page.locator(".search-group tbody td.num").first.inner_text()  # its activation
    assert browser_page.console_errors == [] and browser_page.failed_requests == []
