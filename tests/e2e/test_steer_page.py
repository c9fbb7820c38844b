"""The live steering page in headless Chromium, through the whole stack: uvicorn (page and
websocket), Redis, a real Celery worker decoding the demo model, and the built frontend.

Drag a strength slider and the steered column changes while the default column stays the
same; the permalink of the result restores the same texts. Screenshots land in the test's
tmp dir (and docs/screenshot-steer.png, the README's, with UPDATE_README_SCREENSHOT=1).
"""

from __future__ import annotations

import json
import os
import shutil
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.e2e

# Stands in for indexing statistics: it only sets the slider's unit (multiples of max activation).
MAX_ACTIVATION = 8.0
FEATURE = 5
DEMO_TOKENIZER = REPO / "workers" / "engine" / "demo" / "checkpoint" / "model" / "tokenizer.json"
# Generation of a whole continuation on the demo model through a fresh worker can take a while.
GENERATION_TIMEOUT_MS = 60_000


@pytest.fixture
def demo_model(transactional_db):
    """The demo model and SAE registered as `demo` / `demo` (committed: the server and the
    worker are other processes), plus one feature row so the slider has a unit."""
    from explorer.saes.models import Feature
    from workers.registration import sae_register_from_specs

    registration = sae_register_from_specs(
        model_spec="demo", sae_spec="demo", slug="demo", model_slug="demo"
    )
    Feature.objects.create(
        sae=registration.sae,
        index=FEATURE,
        max_activation=MAX_ACTIVATION,
        density=0.01,
        mean_activation=2.0,
    )
    return registration.sae


def page_errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]


def continuation(page, row: str) -> str:
    """The generated text of one column (the column starts with the prompt, shown muted)."""
    return page.eval_on_selector(
        f"[data-row-text={row}]",
        "el => el.textContent.slice((el.querySelector('.steer-echo')?.textContent ?? '').length)",
    )


def wait_until_done(page) -> None:
    """Both rows of the latest generation finished (the panel shows its permalink then)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "() => document.querySelector('.steer-state')?.textContent === 'done'"
            " && [...document.querySelectorAll('[data-row-text]')]"
            ".every(e => e.dataset.done === 'true')",
            timeout=GENERATION_TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        shown = page.eval_on_selector_all(
            ".steer-bar, .steer-error, .steer-row-status", "els => els.map(e => e.textContent)"
        )
        raise AssertionError(f"generation did not finish; the page shows {shown}") from None


def alternatives_on_hover(page) -> None:
    """Hovering a generated token of the steered column shows its probability and the five
    likeliest tokens at its step, the chosen one among them marked when it is."""
    token = page.locator(".steer-column--steered .steer-tok").last
    token.hover()
    tip = page.locator(".steer-alts")
    tip.wait_for(state="visible")
    assert tip.locator("li").count() == 5
    assert tip.locator(".steer-alts-head strong").inner_text().endswith("%")
    page.mouse.move(0, 0)
    tip.wait_for(state="hidden")


# Counts changes to the default column's text nodes and elements (attributes aside).
WATCH_DEFAULT_COLUMN = """() => {
  window.defaultColumnMutations = 0;
  new MutationObserver((records) => { window.defaultColumnMutations += records.length; })
    .observe(document.querySelector('[data-row-text=default]'),
             {childList: true, characterData: true, subtree: true});
}"""


def drag_slider(page, selector: str, fraction: float) -> None:
    """Press the slider's thumb (at its current value, the middle for 0) and drag it in small
    steps, as a hand would, to `fraction` of the track."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=25)
    page.mouse.up()


@pytest.mark.parametrize(
    "browser_options", [{"viewport": {"width": 1440, "height": 900}, "color_scheme": "light"}]
)
def test_dragging_a_slider_changes_only_the_steered_column_and_the_permalink_restores_it(
    browser_page, live_server_url, celery_worker_proc, demo_model, tmp_path
):
    page = browser_page.page
    query = urlencode(
        [
            ("prompt", "The city council said"),
            ("f", f"demo:{FEATURE}:0"),
            ("t", "0.7"),
            ("seed", "3"),
            ("n", "24"),
        ]
    )
    response = page.goto(f"{live_server_url}/demo/steer/?{query}", wait_until="networkidle")
    assert response is not None and response.status == 200
    page.wait_for_selector("[data-steer][data-steer-ready=true]")

    # Strength 0: the steered row is the default row exactly, and nothing is marked.
    wait_until_done(page)
    default_before = continuation(page, "default")
    assert default_before.strip()
    assert continuation(page, "steered") == default_before
    assert page.locator("mark.steer-diverged").all_text_contents() == ["", ""]
    assert page.locator(".steer-tick--max").count() == 1

    # The default column depends on nothing a slider changes: the drag never touches it.
    page.evaluate(WATCH_DEFAULT_COLUMN)
    drag_slider(page, ".steer-slider", 0.93)
    page.wait_for_timeout(300)  # the throttle's trailing edge sends the last position
    wait_until_done(page)
    assert page.evaluate("window.defaultColumnMutations") == 0

    strength = float(page.input_value(".steer-raw"))
    assert strength > MAX_ACTIVATION
    steered = continuation(page, "steered")
    assert continuation(page, "default") == default_before
    assert steered != default_before
    assert page.locator(".steer-column--steered mark.steer-diverged").inner_text().strip()
    # No markup from the model ever becomes an element.
    assert page.locator(".steer-text script, .steer-text img").count() == 0
    alternatives_on_hover(page)
    page.screenshot(path=str(tmp_path / "steer-alternatives.png"), full_page=True)

    # The URL carries the whole request.
    q = parse_qs(urlsplit(page.url).query)
    assert urlsplit(page.url).path == "/demo/steer/"
    assert q["prompt"] == ["The city council said"]
    assert q["f"] == [f"demo:{FEATURE}:{page.input_value('.steer-raw')}"]
    assert (q["seed"], q["n"], q["t"], q["pos"]) == (["3"], ["24"], ["0.7"], ["all"])

    shot = browser_page.screenshot("steer-desktop-light")
    if os.environ.get("UPDATE_README_SCREENSHOT"):  # as tests/e2e/test_home.py
        shutil.copyfile(shot, REPO / "docs" / "screenshot-steer.png")

    permalink = page.get_attribute(".steer-permalink", "href")
    assert permalink and permalink.startswith("/steer/")
    page.goto(live_server_url + permalink, wait_until="networkidle")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    assert continuation(page, "default") == default_before
    assert continuation(page, "steered") == steered
    assert float(page.input_value(".steer-raw")) == strength
    alternatives_on_hover(page)  # stored with the result
    page.screenshot(path=str(tmp_path / "steer-permalink.png"), full_page=True)

    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


@pytest.mark.parametrize(
    "browser_options",
    [
        {
            "viewport": {"width": 390, "height": 844},
            "device_scale_factor": 2,
            "is_mobile": True,
            "has_touch": True,
            "color_scheme": "dark",
        }
    ],
)
def test_the_steering_page_fits_a_phone_screen_in_dark_mode(
    browser_page, live_server_url, celery_worker_proc, demo_model
):
    page = browser_page.page
    query = urlencode(
        [
            ("prompt", "The city council said"),
            ("f", f"demo:{FEATURE}:40"),
            ("seed", "3"),
            ("n", "16"),
        ]
    )
    page.goto(f"{live_server_url}/demo/steer/?{query}", wait_until="networkidle")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    wait_until_done(page)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 27)"
    # The columns are stacked here: the intro must not say left and right.
    intro = page.inner_text(".steer-intro").lower()
    assert "left" not in intro and "right" not in intro
    # Generation settings fold away, so the slider and the steered text share one screen.
    assert page.locator(".steer-settings-box").get_attribute("open") is None
    assert page.locator(".steer-settings-digest").is_visible()
    slider = page.locator(".steer-slider").bounding_box()
    steered = page.locator("[data-row-text=steered]").bounding_box()
    assert slider is not None and steered is not None
    # Steered text first, right below the slider: both on the first screen.
    assert slider["y"] < steered["y"] < 844, (slider, steered)
    browser_page.screenshot("steer-phone-dark")
    page.locator(".steer-slider").scroll_into_view_if_needed()
    browser_page.screenshot("steer-phone-dark-viewport", full_page=False)
    assert page_errors(browser_page) == []


def test_a_feature_typed_as_sae_index_is_added_with_its_max_activation_and_steered(
    browser_page, live_server_url, celery_worker_proc, demo_model
):
    page = browser_page.page
    query = urlencode([("prompt", "The city council said"), ("seed", "3"), ("n", "8")])
    page.goto(f"{live_server_url}/demo/steer/?{query}", wait_until="networkidle")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    assert page.locator(".steer-feature").count() == 0
    wait_until_done(page)  # unsteered: both rows the same

    page.fill(".steer-search-input", f"demo#{FEATURE}")
    page.wait_for_selector(f".steer-candidate:has-text('demo#{FEATURE}')")
    page.press(".steer-search-input", "Enter")
    row = page.locator(f".steer-feature[data-feature='demo#{FEATURE}']")
    row.wait_for()
    # Added at 4x its max activation, labelled in those units, with the raw value beside it.
    assert row.locator(".steer-units").inner_text() == "= 4× max act."
    assert float(row.locator(".steer-raw").input_value()) == 4 * MAX_ACTIVATION
    assert parse_qs(urlsplit(page.url).query)["f"] == [f"demo:{FEATURE}:{4 * MAX_ACTIVATION:g}"]
    wait_until_done(page)
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


@pytest.fixture
def more_features(demo_model):
    """Features #745 and #755 (the search's near miss for `demo#745`), indexed and explained."""
    from explorer.explanations.services import explanation_create
    from explorer.saes.models import Feature

    for index in (745, 755):
        feature = Feature.objects.create(
            sae=demo_model, index=index, max_activation=6.0, density=0.01, mean_activation=1.0
        )
        explanation_create(feature=feature, text=f"demo#{index} lookalike", method="human")
    return demo_model


def test_typing_sae_index_and_enter_adds_exactly_that_feature(
    browser_page, live_server_url, celery_worker_proc, more_features
):
    page = browser_page.page
    query = urlencode([("prompt", "The city council said"), ("n", "8"), ("f", "demo:99999:4")])
    page.goto(f"{live_server_url}/demo/steer/?{query}", wait_until="networkidle")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    # A feature of the link that does not exist is named, not dropped silently.
    assert page.inner_text(".steer-notices") == (
        "Left out feature demo#99999: demo has 1536 features (0–1535)."
    )

    # Enter at once, before any suggestion arrives.
    page.fill(".steer-search-input", "demo#745")
    page.press(".steer-search-input", "Enter")
    page.locator(".steer-feature[data-feature='demo#745']").wait_for()

    # Enter after the suggestions arrived: the exact feature is first, marked, and added.
    page.fill(".steer-search-input", "#755")
    first = page.locator(".steer-candidate").first
    first.wait_for()
    assert first.locator(".steer-candidate-name").inner_text() == "demo#755"
    assert first.locator(".steer-candidate-match").inner_text() == "exact"
    page.wait_for_timeout(500)  # the search's answer too
    page.press(".steer-search-input", "Enter")
    page.locator(".steer-feature[data-feature='demo#755']").wait_for()
    assert page.locator(".steer-feature").count() == 2
    assert parse_qs(urlsplit(page.url).query)["f"] == ["demo:745:24", "demo:755:24"]
    wait_until_done(page)
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


@pytest.mark.parametrize(
    "browser_options",
    [{"viewport": {"width": 1280, "height": 800}, "java_script_enabled": False}],
)
def test_without_javascript_the_page_is_a_form_over_the_same_query(
    browser_page, live_server_url, demo_model
):
    page = browser_page.page
    query = urlencode(
        [
            ("prompt", "<script>x</script>"),
            ("f", f"demo:{FEATURE}:12:clamp"),
            ("seed", "4"),
            ("pos", "generated"),
        ]
    )
    response = page.goto(f"{live_server_url}/demo/steer/?{query}")
    assert response is not None and response.status == 200
    assert page.input_value("textarea[name=prompt]") == "<script>x</script>"
    assert page.input_value("input[name=f]") == f"demo:{FEATURE}:12.0:clamp"
    assert page.input_value("input[name=seed]") == "4"
    assert page.input_value("select[name=pos]") == "generated"
    assert page.locator("[data-row-text=default] .steer-echo").inner_text() == "<script>x</script>"
    page.fill("input[name=seed]", "5")
    page.click(".steer-controls button[type=submit]")
    page.wait_for_url(lambda url: "seed=5" in url)
    assert parse_qs(urlsplit(page.url).query)["f"] == [f"demo:{FEATURE}:12.0:clamp"]


PAIRS = "\n".join(
    json.dumps(pair)
    for pair in [
        {
            "prompt": "The weather today is",
            "positive": " lovely and warm",
            "negative": " awful and cold",
        },
        {"prompt": "I think the film was", "positive": " wonderful", "negative": " terrible"},
        {
            "prompt": "Our new neighbours are",
            "positive": " kind and friendly",
            "negative": " rude and loud",
        },
    ]
)


def test_a_caa_vector_made_from_pasted_pairs_lists_its_features_and_steers(
    browser_page, live_server_url, celery_worker_proc, demo_model, django_user_model, tmp_path
):
    django_user_model.objects.create_user(username="alice", password="wonderland-42")
    page = browser_page.page
    steer_url = "/demo/steer/?" + urlencode(
        [("prompt", "The city council said"), ("seed", "3"), ("n", "12")]
    )
    page.goto(f"{live_server_url}/accounts/login/?{urlencode([('next', steer_url)])}")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wonderland-42")
    page.click("main button[type=submit], main input[type=submit]")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    wait_until_done(page)
    default_text = continuation(page, "default")

    page.click(".steer-caa summary")
    page.fill(".steer-caa-pairs textarea", PAIRS)
    page.fill(".steer-caa input[type=text]", "cheerful")
    page.click(".steer-caa-submit")
    # The live worker builds it; the panel polls until it is ready and lists its features.
    page.wait_for_selector(".steer-caa-aligned li", timeout=GENERATION_TIMEOUT_MS)
    assert "cos" in page.inner_text(".steer-caa-aligned")

    page.click(".steer-caa-vector button")
    row = page.locator(".steer-feature[data-feature^='vector:']")
    row.wait_for()
    assert row.locator(".steer-units").inner_text() == "× the contrast vector"
    vector_id = row.get_attribute("data-feature").split(":")[1]
    drag_slider(page, ".steer-feature[data-feature^='vector:'] .steer-slider", 0.97)
    page.wait_for_timeout(300)
    wait_until_done(page)
    assert float(row.locator(".steer-raw").input_value()) > 100
    assert continuation(page, "default") == default_text
    assert continuation(page, "steered") != default_text
    assert parse_qs(urlsplit(page.url).query)["v"] == [
        f"{vector_id}:{row.locator('.steer-raw').input_value()}"
    ]
    page.screenshot(path=str(tmp_path / "steer-caa.png"), full_page=True)
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []


# A top example of feature 5: it peaks on " park", so the panel's prompt is the text before it.
EXAMPLE = "The city council said on Monday that the new park"
LEAD_IN = "The city council said on Monday that the new"


@pytest.fixture
def demo_example(demo_model):
    """A top example for FEATURE, tokenised by the demo model's own tokenizer."""
    from tokenizers import Tokenizer

    from tests.builders import ExampleRow, store_examples

    ids = Tokenizer.from_file(str(DEMO_TOKENIZER)).encode(EXAMPLE).ids
    values = [0.0] * len(ids)
    values[-1] = MAX_ACTIVATION
    store_examples(
        demo_model,
        [
            ExampleRow(
                feature_index=FEATURE,
                kind="top",
                token_ids=ids,
                values=values,
                max_value=MAX_ACTIVATION,
                max_position=len(ids) - 1,
            )
        ],
    )
    return demo_model


@pytest.mark.parametrize(
    "browser_options", [{"viewport": {"width": 1440, "height": 900}, "color_scheme": "dark"}]
)
def test_steer_with_this_feature_opens_on_its_example_and_visibly_changes_the_text(
    browser_page, live_server_url, demo_example, celery_worker_proc
):
    page = browser_page.page
    url = f"{live_server_url}/demo/demo/{FEATURE}/"
    page.goto(url)
    assert page.locator("[data-steer]").get_attribute("data-steer-ready") is None  # not yet
    page.locator("details.steer-embed > summary").click()
    wait_until_done(page)
    # The lead-in of its top example, at 4x its max activation: the continuation changes.
    assert page.input_value(".steer-prompt") == LEAD_IN
    assert float(page.input_value(".steer-raw")) == 4 * MAX_ACTIVATION
    assert continuation(page, "steered") != continuation(page, "default")
    assert page.url == url  # the panel leaves the feature page's URL alone
    page.locator("details.steer-embed").scroll_into_view_if_needed()
    browser_page.screenshot("feature-steer-panel-dark")

    # The button opens the steering page the same way, and it generates at once.
    page.click(".feature-actions a:has-text('Steer with this feature')")
    page.wait_for_url("**/demo/steer/?*")
    q = parse_qs(urlsplit(page.url).query)
    assert q["prompt"] == [LEAD_IN]
    assert q["f"] == [f"demo:{FEATURE}:{4 * MAX_ACTIVATION:g}"]
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    wait_until_done(page)
    assert continuation(page, "steered") != continuation(page, "default")
    assert page.locator(".steer-column--steered mark.steer-diverged").inner_text().strip()
    browser_page.screenshot("steer-desktop-dark")
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []
