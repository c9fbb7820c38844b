"""The feature page in headless Chromium on a synthetic indexed SAE: charts, examples,
token tooltips, keyboard navigation, the context toggle and the embed. Screenshots land in
test-artifacts/ and in the test's tmp dir."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from explorer.explanations.services import explanation_create
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.e2e


@pytest.fixture
def indexed(transactional_db):
    built = build_indexed_sae(d_sae=48, examples_per_feature=6, context=40)
    explanation_create(
        feature=built.features[3],
        text="sitting animals and the mats they sit on",
        method="offline",
        score=0.71,
    )
    explanation_create(feature=built.features[4], text="the word 'dog'", method="offline")
    return built


def errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]


def open_feature(browser_page, live_server_url, path="/tiny/res-1/3/", wait_until="networkidle"):
    page = browser_page.page
    response = page.goto(live_server_url + path, wait_until=wait_until)
    assert response is not None and response.status == 200
    return page


def test_it_renders_the_histogram_logit_bars_and_examples(
    browser_page, live_server_url, indexed, tmp_path
):
    page = open_feature(browser_page, live_server_url)
    assert page.locator('[data-chart="histogram"] svg.histogram rect.bar').count() == 4
    assert page.locator('[data-chart="logits"] .logit-col--positive .logit-row').count() == 3
    assert page.locator('[data-chart="logits"] .logit-col--negative .logit-row').count() == 3
    assert page.locator('[data-chart="examples"] .token-strip').count() == 7
    assert page.locator('[data-chart="examples"] .token--max').count() == 7
    assert page.locator("[data-chart-error]").count() == 0
    assert (
        page.locator(".explanations >> text=sitting animals and the mats they sit on").count() == 1
    )
    shot = browser_page.screenshot("feature-page")
    shutil.copy(shot, tmp_path / "feature-page.png")
    assert errors(browser_page) == []
    assert browser_page.failed_requests == []


def test_the_server_rendered_strips_do_not_move_when_the_script_redraws_them(
    browser_page, live_server_url, indexed
):
    page = browser_page.page
    page.route("**/static/assets/*.js", lambda route: route.abort())
    page.goto(live_server_url + "/tiny/res-1/3/", wait_until="load")
    before = page.eval_on_selector_all(
        ".example .token", "els => els.map(e => e.getAttribute('style') + e.textContent)"
    )
    box_before = page.locator(".examples").bounding_box()
    page.unroute("**/static/assets/*.js")
    open_feature(browser_page, live_server_url)
    after = page.eval_on_selector_all(
        ".example .token", "els => els.map(e => e.getAttribute('style') + e.textContent)"
    )
    assert [s.replace(" ", "") for s in before] == [s.replace(" ", "") for s in after]
    assert page.locator(".examples").bounding_box()["y"] == box_before["y"]


def test_hovering_a_token_shows_its_value(browser_page, live_server_url, indexed):
    page = open_feature(browser_page, live_server_url)
    token = page.locator(".example .token--max").first
    token.hover()
    tip = page.locator(".token-tooltip")
    tip.wait_for(state="visible")
    value = float(token.get_attribute("data-value"))
    assert tip.locator("strong").text_content() == f"{value:.3g}".rstrip("0").rstrip(".")
    assert errors(browser_page) == []


def test_a_script_token_is_shown_as_text(browser_page, live_server_url, indexed):
    # Feature 9 peaks on vocab[9] == " <script>".
    page = open_feature(browser_page, live_server_url, "/tiny/res-1/9/")
    assert page.locator(".example .token--max", has_text="<script>").count() > 0
    assert page.evaluate("window.__pwned === undefined")


def test_the_arrow_keys_move_between_features_and_r_picks_a_random_one(
    browser_page, live_server_url, indexed
):
    page = open_feature(browser_page, live_server_url)
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/tiny/res-1/4/")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/tiny/res-1/3/")
    page.keyboard.press("r")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1].isdigit() and "/random" not in url)
    assert errors(browser_page) == []


def test_the_context_toggle_redraws_in_place_and_keeps_the_width_in_the_url(
    browser_page, live_server_url, indexed
):
    page = open_feature(browser_page, live_server_url)
    count16 = page.locator(".example .token").count()
    page.click('[data-context-width="5"]')
    assert page.locator(".example .token").count() < count16
    assert "ctx=5" in page.url
    page.click('[data-context-width="full"]')
    assert page.locator(".example .token").count() >= count16
    assert page.locator(".token-strip--cut-before").count() == 0


def test_a_dead_feature_says_so(browser_page, live_server_url, indexed):
    page = open_feature(browser_page, live_server_url, "/tiny/res-1/10/")
    assert page.locator("text=This feature is dead.").count() == 1
    assert page.locator("[data-chart=histogram]").count() == 0


@pytest.fixture
def blog(live_server_url):
    """Another site (another port on loopback: Chromium lets only local pages frame local
    ones) whose page frames the feature's embed (#embed) and the feature page (#page)."""
    body = (
        f'<iframe id="embed" src="{live_server_url}/tiny/res-1/3/?embed=1&test=1"'
        ' width="800" height="900"></iframe>'
        f'<iframe id="page" src="{live_server_url}/tiny/res-1/3/"></iframe>'
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/a-post"
    server.shutdown()
    server.server_close()


def test_the_embed_renders_framed_by_another_site_which_cannot_frame_the_page(
    browser_page, live_server_url, indexed, blog, tmp_path
):
    page = browser_page.page
    page.goto(blog)
    frame = page.frame_locator("#embed")
    frame.locator('[data-chart="histogram"] svg.histogram').wait_for()
    assert frame.locator(".site-header").count() == 0
    assert frame.locator('[data-chart="examples"] .token-strip').count() == 7
    shot = browser_page.screenshot("feature-embed")
    shutil.copy(shot, tmp_path / "feature-embed.png")

    # The feature page itself refuses the frame: frame-ancestors 'none'.
    assert page.frame_locator("#page").locator(".site-header").count() == 0
    for _ in range(50):  # page.wait_for_timeout, not sleep: events arrive while it waits
        if browser_page.csp_violations:
            break
        page.wait_for_timeout(200)
    assert browser_page.csp_violations
    assert all("frame-ancestors 'none'" in v for v in browser_page.csp_violations)
    browser_page.csp_violations.clear()


@pytest.mark.parametrize(
    "browser_options", [{"color_scheme": "dark", "viewport": {"width": 1280, "height": 900}}]
)
def test_the_feature_page_in_dark_mode(browser_page, live_server_url, indexed, tmp_path):
    page = open_feature(browser_page, live_server_url)
    assert page.get_attribute("html", "data-theme") == "dark"
    shot = browser_page.screenshot("feature-page-dark")
    shutil.copy(shot, tmp_path / "feature-page-dark.png")
    assert errors(browser_page) == []


@pytest.mark.parametrize(
    "browser_options",
    [{"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}],
)
def test_the_feature_page_fits_a_phone(browser_page, live_server_url, indexed):
    page = open_feature(browser_page, live_server_url)
    assert (
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        <= 0
    )
    browser_page.screenshot("feature-page-phone")


@pytest.fixture
def demo_indexed(transactional_db):
    """The committed demo model and SAE, registered, with synthetic feature rows: the live
    worker (celery_worker_proc, queue live.demo) computes real activations for the test form."""
    from workers.registration import sae_register_from_specs

    return build_indexed_sae(sae=sae_register_from_specs(model_spec="demo", sae_spec="demo").sae)


@pytest.mark.integration
def test_testing_your_text_highlights_its_tokens_in_place(
    browser_page, live_server_url, demo_indexed, celery_worker_proc, tmp_path
):
    page = open_feature(browser_page, live_server_url, "/demo/demo/3/")
    page.fill("#test-text", "The cat sat on the mat.")
    page.click(".test-form button[type=submit]")
    result = page.locator("[data-test-result][data-test-rendered]")
    result.wait_for(timeout=60_000)
    tokens = result.locator(".token")
    assert tokens.count() > 3
    assert "".join(tokens.all_text_contents()).replace("·", " ") == "The cat sat on the mat."
    assert "text=The+cat+sat" in page.url or "text=The%20cat%20sat" in page.url
    status = page.locator("[data-test-status]").text_content()
    assert "Max activation on your text" in status or "does not fire on your text" in status
    shutil.copy(browser_page.screenshot("feature-test-text"), tmp_path / "feature-test-text.png")
    assert errors(browser_page) == []


@pytest.mark.integration
def test_a_shared_test_text_runs_when_the_page_opens(
    browser_page, live_server_url, demo_indexed, celery_worker_proc
):
    # "load", not "networkidle": the test request is in flight while the worker runs it.
    page = open_feature(
        browser_page, live_server_url, "/demo/demo/3/?text=A+river+bank.", wait_until="load"
    )
    assert page.input_value("#test-text") == "A river bank."
    page.locator("[data-test-result][data-test-rendered]").wait_for(timeout=60_000)


def sign_in(page, live_server_url, next_path):
    page.goto(f"{live_server_url}/accounts/login/?next={next_path}", wait_until="networkidle")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "correct horse battery")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def test_a_signed_in_reader_adds_an_explanation_and_the_feature_to_a_list(
    browser_page, live_server_url, indexed, django_user_model
):
    from explorer.lists.models import FeatureList, FeatureListItem

    alice = django_user_model.objects.create_user(
        "alice", "alice@example.org", "correct horse battery"
    )
    cats = FeatureList.objects.create(owner=alice, name="cats")
    page = browser_page.page
    sign_in(page, live_server_url, "/tiny/res-1/5/")
    page.click("text=Write an explanation")
    page.fill("#explanation-text", "five o'clock shadows")
    page.click(".explanations-add button[type=submit]")
    page.locator(".explanation-main", has_text="five o'clock shadows").wait_for()
    page.fill("#list-note", "a note")
    page.click(".add-to-list button[type=submit]")
    page.locator("[data-list-status]", has_text="Added to “cats”.").wait_for()
    assert FeatureListItem.objects.filter(
        feature_list=cats, feature__index=5, note="a note"
    ).exists()
    assert errors(browser_page) == []


def test_an_img_token_renders_as_text_after_the_scripts_ran(
    browser_page, live_server_url, transactional_db
):
    from tests.builders import make_language_model, make_sae

    evil = "<img src=x onerror=alert(1)>"
    build_indexed_sae(
        sae=make_sae(make_language_model(slug="evil", source="evil-source", vocab=[evil, "a"]))
    )
    page = browser_page.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_feature(browser_page, live_server_url, "/evil/res-1/2/?ctx=full")
    page.click('[data-context-width="5"]')  # a redraw by the token strip
    page.locator(".example .token").first.hover()
    assert page.locator("main img").count() == 0
    assert page.locator(".example .token", has_text=evil).count() > 0
    assert page.locator(".logit-token", has_text=evil).count() > 0
    assert dialogs == []


@pytest.fixture
def demo_really_indexed(transactional_db, celery_worker_proc, tmp_path):
    """The demo SAE indexed for real (manage.py index_sae on the worker) over a small corpus."""
    import json
    import random

    from django.core.management import call_command

    from explorer.saes.models import Feature
    from workers.registration import sae_register_from_specs

    rng = random.Random(0)
    words = [
        "the",
        "state",
        "of",
        "union",
        "was",
        "read",
        "to",
        "people",
        ".",
        "she",
        "said",
        "that",
        "weather",
        "in",
        "city",
        "would",
        "be",
        "fine",
        ",",
        "and",
        "market",
        "rose",
        "by",
        "3",
        "percent",
        "on",
        "monday",
        "while",
        "river",
        "ran",
        "high",
        "\n",
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": " ".join(rng.choice(words) for _ in range(80))}) + "\n"
            for _ in range(60)
        )
    )
    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    call_command(
        "index_sae", "demo/demo", corpus=str(corpus), tokens=3000, context=32, batch_size=8
    )
    return Feature.objects.filter(sae=sae, dead=False).order_by("-density").first()


@pytest.mark.integration
def test_a_really_indexed_feature_renders(
    browser_page, live_server_url, demo_really_indexed, tmp_path
):
    page = open_feature(browser_page, live_server_url, f"/demo/demo/{demo_really_indexed.index}/")
    assert page.locator('[data-chart="histogram"] svg.histogram rect.bar').count() > 0
    assert page.locator('[data-chart="examples"] .token-strip').count() > 0
    assert page.locator("[data-chart-error]").count() == 0
    shutil.copy(browser_page.screenshot("feature-page-demo"), tmp_path / "feature-page-demo.png")
    sae_page = page.goto(live_server_url + "/demo/demo/", wait_until="networkidle")
    assert sae_page.status == 200
    browser_page.screenshot("sae-page-demo")
    assert errors(browser_page) == []
