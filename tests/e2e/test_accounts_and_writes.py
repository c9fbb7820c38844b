"""A new reader's first writes, in headless Chromium under the app's Content-Security-Policy
(tests/e2e/conftest.py fails a test on any violation): sign up from a feature page and land
back on it, add the feature to a new list and open the lists, make an API key, write an
explanation, vote on it, edit it. Screenshots of the feature and SAE pages (light, dark,
phone) land in test-artifacts/."""

from __future__ import annotations

import pytest

from explorer.explanations.services import explanation_create
from explorer.saes.models import Feature
from tests.builders import build_indexed_sae, example_rows, store_examples

pytestmark = pytest.mark.e2e

FEATURE = "/tiny/res-1/5/"


@pytest.fixture
def indexed(transactional_db):
    built = build_indexed_sae(d_sae=48, examples_per_feature=6, context=40)
    explanation_create(feature=built.features[5], text='" cat" · promotes " sat"', method="offline")
    # Feature 6 fires on 28% of tokens, right after BOS: the page must say so.
    Feature.objects.filter(pk=built.features[6].pk).update(density=0.28)
    rows = example_rows(built.sae)
    for r in rows:
        if r.feature_index == 6 and r.kind == "top":
            r.max_position = r.offset = 0
    store_examples(built.sae, rows)
    return built


def errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]


def test_a_new_reader_signs_up_from_a_feature_and_adds_it_to_a_new_list(
    browser_page, live_server_url, indexed
):
    from django.contrib.auth.models import User

    from explorer.lists.models import FeatureListItem

    page = browser_page.page
    page.goto(live_server_url + FEATURE, wait_until="networkidle")
    page.locator(".feature-actions .need-account a", has_text="sign up").click()
    page.wait_for_url("**/accounts/signup/**")
    browser_page.screenshot("signup-page")
    page.fill("#id_username", "dora")
    page.fill("#id_password1", "a long new passphrase")
    page.fill("#id_password2", "a long new passphrase")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**{FEATURE}")
    assert page.locator(".site-nav", has_text="dora").count() == 1
    # A new account has no list yet: "New list…" is picked and its name asked for.
    assert page.input_value("#list-pick") == ""
    page.fill("#list-new-name", "Cats")
    page.click(".add-to-list button[type=submit]")
    page.locator("[data-list-status]", has_text="Added to “Cats”.").wait_for()
    page.click(".add-to-list button[type=submit]")
    page.locator("[data-list-status]", has_text="Already on “Cats”.").wait_for()
    dora = User.objects.get(username="dora")
    assert FeatureListItem.objects.filter(feature_list__owner=dora, feature__index=5).count() == 1

    # The lists and the new list's page, then an API key.
    page.goto(live_server_url + "/lists/", wait_until="networkidle")
    page.locator("[data-my-lists] a", has_text="Cats").click()
    page.locator("main a", has_text="tiny/res-1 #5").wait_for()
    page.goto(live_server_url + "/accounts/keys/", wait_until="networkidle")
    page.fill("#key-name", "notebook")
    page.click("main form button[type=submit]")
    page.locator("#new-key").wait_for()
    assert errors(browser_page) == []
    assert browser_page.failed_requests == []


def test_a_signed_in_reader_writes_votes_and_edits_under_a_strict_csp(
    browser_page, live_server_url, indexed, django_user_model
):
    from explorer.explanations.models import Explanation, Vote

    django_user_model.objects.create_user("alice", "alice@example.org", "correct horse battery")
    page = browser_page.page
    page.goto(f"{live_server_url}/accounts/login/?next={FEATURE}", wait_until="networkidle")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "correct horse battery")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**{FEATURE}")

    # Vote on the offline label: the total moves and the button stays pressed.
    up = page.locator(".explanation-meta [data-vote='1']")
    up.click()
    page.locator(".explanation-meta [data-vote-count]", has_text="1").wait_for()
    assert up.get_attribute("aria-pressed") == "true"
    assert Vote.objects.filter(user__username="alice", value=1).count() == 1

    # Write an explanation (the page reloads with it), then edit it.
    page.click("text=Write an explanation")
    page.fill("#explanation-text", "cats, <b>not</b> dogs")
    page.click(".explanations-add button[type=submit]")
    page.locator(".explanations", has_text="cats, <b>not</b> dogs").first.wait_for()
    mine = Explanation.objects.get(author__username="alice")
    page.locator(".explanations-more > summary").click()
    page.locator(".explanation-edit > summary").click()
    page.fill(f"#explanation-edit-{mine.pk}", "cats sitting")
    page.locator(".explanation-edit button[type=submit]").click()
    page.locator(".explanations", has_text="cats sitting").first.wait_for()
    mine.refresh_from_db()
    assert mine.text == "cats sitting" and mine.edited is not None
    assert page.locator("main b").count() == 0  # the markup was text, never HTML
    page.locator(".explanations-more > summary").click()
    page.click("text=Write an explanation")
    browser_page.screenshot("ux-pages-feature-signed-in")
    assert errors(browser_page) == []


def test_a_flagged_feature_says_what_it_is(browser_page, live_server_url, indexed):
    browser_page.page.goto(live_server_url + "/tiny/res-1/6/", wait_until="networkidle")
    page = browser_page.page
    assert page.locator('[data-flag="dense"]').count() == 1
    assert page.locator('[data-flag="document start"]').count() == 1
    assert "28%" in page.locator(".stats").first.inner_text()


def test_the_context_width_holds_across_next_and_previous(browser_page, live_server_url, indexed):
    page = browser_page.page
    page.goto(live_server_url + FEATURE, wait_until="networkidle")
    page.click('[data-context-width="5"]')
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/tiny/res-1/6/?ctx=5")
    assert page.locator('[data-context-width="5"][aria-current="true"]').count() == 1
    page.goto(live_server_url + "/tiny/res-1/7/", wait_until="networkidle")  # no ?ctx=: stored
    assert page.locator('[data-chart="examples"]').get_attribute("data-context") == "5"


SHOTS = {
    "light": {"viewport": {"width": 1440, "height": 900}, "color_scheme": "light"},
    "dark": {"viewport": {"width": 1440, "height": 900}, "color_scheme": "dark"},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "color_scheme": "light",
    },
}


@pytest.mark.parametrize("browser_options", list(SHOTS.values()), ids=list(SHOTS))
def test_screenshots_of_the_feature_and_sae_pages(
    browser_page, live_server_url, indexed, browser_options, django_user_model, request
):
    name = request.node.callspec.id
    page = browser_page.page
    for path, shot in (("/tiny/res-1/6/", "feature"), ("/tiny/res-1/", "sae")):
        page.goto(live_server_url + path, wait_until="networkidle")
        if shot == "sae":  # the overview loads when it scrolls into view
            page.locator("[data-importance-overview]").scroll_into_view_if_needed()
            page.locator("[data-importance-empty]:not([hidden])").wait_for()
        browser_page.screenshot(f"ux-pages-{shot}-{name}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on {name}"
    assert errors(browser_page) == []
