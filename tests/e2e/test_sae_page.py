"""The SAE page in headless Chromium: the feature table and the zoomable feature map."""

from __future__ import annotations

import shutil

import pytest

from explorer.explanations.services import explanation_create
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.e2e


@pytest.fixture
def indexed(transactional_db):
    built = build_indexed_sae(d_sae=120)
    for f in built.features[1:40:3]:
        explanation_create(feature=f, text=f"explanation of feature {f.index}", method="offline")
    return built


def errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]


def open_sae(browser_page, live_server_url, query=""):
    page = browser_page.page
    response = page.goto(live_server_url + "/tiny/res-1/" + query, wait_until="networkidle")
    assert response is not None and response.status == 200
    page.locator('[data-chart="feature-map"][data-map-ready="true"]').wait_for()
    return page


def test_the_map_renders_every_feature(browser_page, live_server_url, indexed, tmp_path):
    page = open_sae(browser_page, live_server_url)
    assert page.locator(".feature-map circle.map-point").count() == 120
    assert page.locator(".map-legend").count() == 1
    assert page.locator("[data-density-histogram] svg.histogram rect.bar").count() > 0
    shot = browser_page.screenshot("sae-page")
    shutil.copy(shot, tmp_path / "sae-page.png")
    map_shot = tmp_path / "feature-map.png"
    page.locator(".map-card").screenshot(path=str(map_shot))
    shutil.copy(map_shot, shot.parent / "feature-map.png")
    assert errors(browser_page) == []
    assert browser_page.failed_requests == []


def test_hovering_a_point_shows_its_index_and_explanation(browser_page, live_server_url, indexed):
    page = open_sae(browser_page, live_server_url)
    page.locator('circle.map-point[data-index="4"]').hover(force=True)
    tip = page.locator(".map-tooltip")
    tip.wait_for(state="visible")
    assert "#4" in tip.text_content()


def test_clicking_a_point_opens_its_feature(browser_page, live_server_url, indexed):
    page = open_sae(browser_page, live_server_url)
    # The builder puts features on a circle, where some overlap: click the topmost one.
    top = page.locator("circle.map-point").last
    index = top.get_attribute("data-index")
    top.click()
    page.wait_for_url(f"**/tiny/res-1/{index}/")
    assert page.locator("h1").text_content().strip().startswith(f"Feature #{index}")


def test_zooming_scales_the_points_layer(browser_page, live_server_url, indexed):
    page = open_sae(browser_page, live_server_url)
    stage = page.locator(".feature-map__stage")
    box = stage.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "document.querySelector('.feature-map g.points')"
        ".getAttribute('transform')?.includes('scale')"
    )


def test_the_table_pages_forward_and_sorts(browser_page, live_server_url, indexed):
    page = open_sae(browser_page, live_server_url)
    assert page.locator(".feature-table tbody tr").count() == 50
    page.click("text=Next ›")
    page.wait_for_url("**after=49**")
    assert (
        page.locator(".feature-table tbody tr").first.locator("td").first.text_content().strip()
        == "#50"
    )
    page.click("th >> text=Max activation")
    page.wait_for_url("**sort=max**")
    assert page.locator("th[aria-sort]").count() == 1


@pytest.mark.parametrize(
    "browser_options", [{"color_scheme": "dark", "viewport": {"width": 1280, "height": 900}}]
)
def test_the_sae_page_in_dark_mode(browser_page, live_server_url, indexed, tmp_path):
    open_sae(browser_page, live_server_url)
    shot = browser_page.screenshot("sae-page-dark")
    shutil.copy(shot, tmp_path / "sae-page-dark.png")
    assert errors(browser_page) == []


@pytest.mark.parametrize(
    "browser_options",
    [{"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}],
)
def test_the_sae_page_fits_a_phone(browser_page, live_server_url, indexed):
    page = open_sae(browser_page, live_server_url)
    assert (
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        <= 0
    )
    browser_page.screenshot("sae-page-phone")


def test_index_progress_updates_while_a_run_is_active_and_the_page_reloads_when_it_ends(
    browser_page, live_server_url, indexed
):
    from explorer.saes.models import IndexRun

    run = IndexRun.objects.create(
        sae=indexed.sae,
        corpus="demo",
        tokens=1000,
        tokens_total=1000,
        tokens_done=100,
        status=IndexRun.Status.RUNNING,
    )
    page = open_sae(browser_page, live_server_url)
    assert page.locator(".index-progress progress").get_attribute("value") == "100"
    IndexRun.objects.filter(pk=run.pk).update(tokens_done=600)
    page.locator("[data-progress-text]", has_text="600 of 1,000 tokens").wait_for()
    IndexRun.objects.filter(pk=run.pk).update(tokens_done=1000, status=IndexRun.Status.DONE)
    page.locator(".index-progress").wait_for(state="detached")  # reloaded without the box
    assert errors(browser_page) == []


@pytest.fixture
def large(transactional_db):
    """Over the 4,000-point SVG limit: the map draws on a canvas."""
    return build_indexed_sae(d_sae=4500, examples_per_feature=1, dead_every=0)


def test_a_large_map_draws_on_a_canvas_and_still_hovers_and_clicks(
    browser_page, live_server_url, large, tmp_path
):
    page = open_sae(browser_page, live_server_url)
    canvas = page.locator("canvas.feature-map__canvas")
    assert canvas.count() == 1 and page.locator("circle.map-point").count() == 0
    box = canvas.bounding_box()
    # Features lie on the unit circle; its rightmost point is half the plot's size right of centre.
    size = min(box["width"], box["height"]) - 24
    x, y = box["x"] + box["width"] / 2 + size / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    tip = page.locator(".map-tooltip")
    tip.wait_for(state="visible")
    index = tip.locator("strong").text_content().lstrip("#")
    shutil.copy(
        browser_page.screenshot("sae-page-canvas-map", full_page=False), tmp_path / "canvas-map.png"
    )
    page.mouse.click(x, y)
    page.wait_for_url(f"**/tiny/res-1/{index}/")
