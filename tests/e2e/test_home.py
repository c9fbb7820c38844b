"""The home page through the real ASGI server in headless Chromium: the built frontend loads,
runs, themes the page, and nothing errors. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import urllib.request

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.e2e


# Chromium asks for /favicon.ico when a page declares no icon; the frontend ships
# static/favicon.svg for base.html to link. Until it does, that one 404 is not a page error.
FAVICON_404 = "/favicon.ico"


def page_errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith(FAVICON_404)]


def open_home(browser_page, live_server_url):
    page = browser_page.page
    response = page.goto(live_server_url + "/", wait_until="networkidle")
    assert response is not None and response.status == 200
    return page


def test_home_page_loads_the_frontend_module_without_errors(browser_page, live_server_url):
    page = open_home(browser_page, live_server_url)
    scripts = page.eval_on_selector_all('script[type="module"]', "els => els.map(e => e.src)")
    assert any("/static/assets/main-" in src for src in scripts), scripts
    # initTheme() ran: the module executed, not just downloaded.
    assert page.get_attribute("html", "data-theme") == "light"
    browser_page.screenshot("home-light")
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


def test_home_page_applies_the_built_stylesheet(browser_page, live_server_url):
    page = open_home(browser_page, live_server_url)
    hrefs = page.eval_on_selector_all('link[rel="stylesheet"]', "els => els.map(e => e.href)")
    assert any("/static/assets/main-" in href for href in hrefs), hrefs
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"


@pytest.mark.parametrize(
    "browser_options", [{"color_scheme": "dark", "viewport": {"width": 1280, "height": 800}}]
)
def test_home_page_follows_a_dark_system_setting(browser_page, live_server_url):
    page = open_home(browser_page, live_server_url)
    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 27)"
    browser_page.screenshot("home-dark")
    assert page_errors(browser_page) == []


def test_theme_toggle_switches_and_persists_across_reloads(browser_page, live_server_url):
    page = open_home(browser_page, live_server_url)
    toggle = page.locator("[data-theme-toggle]")
    if toggle.count() == 0:
        pytest.skip("the home template has no [data-theme-toggle] button yet (explorer/ templates)")
    toggle.first.click()
    assert page.get_attribute("html", "data-theme") == "dark"
    page.reload(wait_until="networkidle")
    assert page.get_attribute("html", "data-theme") == "dark"
    browser_page.screenshot("home-toggled-dark")
    assert page_errors(browser_page) == []


@pytest.fixture
def indexed(monkeypatch, transactional_db):
    """A synthetic indexed SAE, so the home page lists it and shows feature cards with strips.
    The module's Playwright driver keeps an event loop running in this thread; building and
    flushing rows is plain sync work, so Django is told to allow it."""
    from tests.builders import build_indexed_sae

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return build_indexed_sae()


def test_chart_placeholders_on_the_home_page_get_rendered(browser_page, live_server_url, indexed):
    page = open_home(browser_page, live_server_url)
    charts = page.locator("[data-chart]")
    assert charts.count() > 0
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.get_attribute("data-chart-error") is None
        assert chart.get_attribute("data-chart-rendered") == "true"
        assert chart.locator("svg, span.token").count() > 0
    browser_page.screenshot("home-with-features")
    assert page_errors(browser_page) == []


@pytest.mark.parametrize(
    "browser_options",
    [
        {
            "viewport": {"width": 390, "height": 844},
            "device_scale_factor": 2,
            "is_mobile": True,
            "has_touch": True,
        }
    ],
)
def test_home_page_fits_a_phone_screen(browser_page, live_server_url):
    page = open_home(browser_page, live_server_url)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser_page.screenshot("home-phone")


def test_the_api_docs_run_and_try_a_request_under_the_policy(
    browser_page, live_server_url, transactional_db
):
    """Swagger UI, from django-ninja's static files, draws every endpoint and runs a request;
    the shared check fails the test on any Content-Security-Policy violation."""
    page = browser_page.page
    page.goto(live_server_url + "/api/v1/docs", wait_until="networkidle")
    # The first request for the schema builds it (seconds on a loaded machine).
    page.locator(".opblock").first.wait_for(timeout=60_000)
    models = page.locator(".opblock-get", has=page.locator("[data-path='/api/v1/models']"))
    models.locator(".opblock-summary").first.click()
    page.locator(".try-out__btn").first.click()
    page.locator(".execute").first.click()
    page.locator(".live-responses-table .response-col_status", has_text="200").wait_for()
    assert page.locator(".opblock").count() > 10
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


def test_frontend_assets_are_served_hashed_with_a_year_long_cache(live_server_url):
    html = urllib.request.urlopen(live_server_url + "/", timeout=10).read().decode()
    urls = re.findall(r'(?:src|href)="(/static/assets/main-[^"]+)"', html)
    assert {url.rsplit(".", 1)[1] for url in urls} == {"js", "css"}
    for url in urls:
        with urllib.request.urlopen(live_server_url + url, timeout=10) as response:
            assert response.status == 200
            assert "max-age=315360000" in response.headers["Cache-Control"]
            assert "immutable" in response.headers["Cache-Control"]


@pytest.mark.skipif(
    not os.environ.get("UPDATE_README_SCREENSHOT"),
    reason="set UPDATE_README_SCREENSHOT=1 to retake it",
)
@pytest.mark.parametrize(
    "browser_options", [{"viewport": {"width": 1100, "height": 560}, "color_scheme": "light"}]
)
def test_readme_screenshot(browser_page, live_server_url):
    """Retakes docs/screenshot-home.png (README):
    UPDATE_README_SCREENSHOT=1 pytest tests/e2e -k readme."""
    open_home(browser_page, live_server_url)
    shot = browser_page.screenshot("readme-home", full_page=False)
    shutil.copyfile(shot, REPO / "docs" / "screenshot-home.png")
