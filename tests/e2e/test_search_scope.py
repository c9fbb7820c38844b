"""Search from anywhere (real browser, real worker): the header box on a feature page searches
that page's SAE, so `text:` runs the model on it; where a search cannot run, the page says why
and links to the searches that can."""

from __future__ import annotations

import pytest

from tests.e2e.test_home import page_errors

pytestmark = pytest.mark.e2e

FEATURE = 318


@pytest.fixture
def two_saes(transactional_db):
    """The demo model with its real SAE (`demo`, one indexed feature) and a second SAE row: a
    search from the feature page must run on the page's SAE, not on the model's."""
    from explorer.saes.models import Feature
    from tests.builders import make_sae
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(
        model_spec="demo", sae_spec="demo", slug="demo", model_slug="demo"
    ).sae
    Feature.objects.create(sae=sae, index=FEATURE, max_activation=6.38, density=0.1)
    make_sae(model=sae.model, slug="other", source="elsewhere", d_in=96, d_sae=8)
    return sae


def _search_from(page, url: str, query: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.fill("#site-search-q", query)
    # A text search answers when a worker has run the model (the first loads it): be patient.
    with page.expect_navigation(timeout=60_000):
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")


def test_a_text_search_from_a_feature_page_runs_on_its_sae(
    browser_page, live_server_url, celery_worker_proc, two_saes
):
    page = browser_page.page
    _search_from(page, f"{live_server_url}/demo/demo/{FEATURE}/", "text:the city council said")
    assert page.locator("[role=alert]").count() == 0
    links = page.eval_on_selector_all(
        ".search-results a", "els => els.map(e => e.getAttribute('href'))"
    )
    assert links and all(href.startswith("/demo/demo/") for href in links)
    assert page.locator("#search-sae").input_value() == "demo/demo"
    browser_page.screenshot("search-text-from-feature-page")
    assert page_errors(browser_page) == []


def test_a_text_search_without_a_model_asks_which_with_links(
    browser_page, live_server_url, two_saes
):
    """With two models and no page scope (the home page), `text:` asks which model to run and
    links a search for each; never a bare error page."""
    from tests.builders import make_language_model, make_sae

    make_sae(model=make_language_model(slug="second", source="second-source"), slug="res")
    page = browser_page.page
    _search_from(page, f"{live_server_url}/", "text:the city council said")
    assert "choose the model" in page.locator("[role=alert]").inner_text()
    links = page.eval_on_selector_all(
        ".search-choose-model a", "els => els.map(e => [e.textContent, e.getAttribute('href')])"
    )
    assert [text for text, _ in links] == ["Search demo", "Search second"]
    assert all(href.startswith("/search/?") and "text%3Athe+city" in href for _, href in links)
    browser_page.screenshot("search-choose-a-model")
    assert page_errors(browser_page) == []
