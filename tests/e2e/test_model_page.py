"""The model page in headless Chromium: the SAE comparison table sorts by its headers."""

from __future__ import annotations

import pytest

from tests.builders import make_evaluation, make_language_model, make_sae

pytestmark = pytest.mark.e2e


@pytest.fixture
def three_saes(transactional_db):
    model = make_language_model()
    a = make_sae(model, slug="alpha", source="a")
    b = make_sae(model, slug="beta", source="b")
    make_sae(model, slug="gamma", source="c")  # never evaluated
    make_evaluation(a, loss_recovered=0.5, l0=40.0)
    make_evaluation(b, loss_recovered=0.9, l0=10.0)


def slugs(page) -> list[str]:
    return page.eval_on_selector_all(
        "table.sae-compare tbody tr td:first-child a", "els => els.map(e => e.textContent)"
    )


def test_clicking_a_metric_header_sorts_the_saes(browser_page, live_server_url, three_saes):
    page = browser_page.page
    response = page.goto(live_server_url + "/tiny/", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert slugs(page) == ["alpha", "beta", "gamma"]
    header = page.locator("table.sae-compare th", has_text="Loss recovered")
    header.locator("button").click()
    assert slugs(page) == ["beta", "alpha", "gamma"]  # best first, the unevaluated last
    assert header.get_attribute("aria-sort") == "descending"
    header.locator("button").click()
    assert slugs(page) == ["alpha", "beta", "gamma"]
    page.locator("table.sae-compare th", has_text="L0").locator("button").click()
    assert slugs(page) == ["alpha", "beta", "gamma"]
    assert header.get_attribute("aria-sort") is None
    browser_page.screenshot("model-page-sorted")
    page.locator("table.sae-compare a", has_text="beta").click()
    page.wait_for_url(live_server_url + "/tiny/beta/")
    errors = [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]
    assert errors == []


def test_the_sae_page_shows_its_metrics_panel(browser_page, live_server_url, three_saes):
    page = browser_page.page
    page.goto(live_server_url + "/tiny/beta/", wait_until="networkidle")
    panel = page.locator("section.sae-metrics")
    assert panel.locator('[data-metric="loss_recovered"] .metric-list__value').inner_text() == "90%"
    browser_page.screenshot("sae-page-metrics")
