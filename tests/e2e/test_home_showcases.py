"""The home page's "Try this" steering showcases in headless Chromium, through the whole stack:
showcases of the demo SAE computed by the engine's criterion, each one click from the live
steering page, which generates at once with a real worker decoding the demo model."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.test_home import page_errors
from tests.e2e.test_steer_page import continuation, wait_until_done

pytestmark = pytest.mark.e2e

# A demo SAE feature that makes a good showcase (tests/workers/test_showcases.py): its max
# activation, density and top logit tokens over demo text.
FEATURE = (318, 6.38, 0.105, [2852, 1001, 2381, 3915, 1498, 2368, 3871, 3323, 994, 4012])
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture
def showcased(transactional_db, settings):
    """The demo model and SAE with one indexed feature, its showcases computed in this process
    (the budget: that one feature) and an explanation whose text is markup."""
    from explorer.explanations.models import Explanation
    from explorer.saes.models import Feature
    from explorer.showcases.models import SteeringShowcase
    from workers.registration import sae_register_from_specs
    from workers.showcases import compute_showcases_for

    sae = sae_register_from_specs(
        model_spec="demo", sae_spec="demo", slug="demo", model_slug="demo"
    ).sae
    index, mx, density, ids = FEATURE
    feature = Feature.objects.create(
        sae=sae,
        index=index,
        max_activation=mx,
        density=density,
        top_logit_ids=ids,
        top_logit_values=[1.0] * len(ids),
    )
    Explanation.objects.create(feature=feature, text="<b>UN</b> resolutions", method="human")
    settings.SHOWCASE_CANDIDATES = 1
    assert compute_showcases_for(sae) >= 1
    return list(SteeringShowcase.objects.filter(sae=sae))


def test_a_showcase_opens_live_steering_that_generates_at_once(
    browser_page, live_server_url, celery_worker_proc, showcased
):
    page = browser_page.page
    page.goto(live_server_url + "/", wait_until="networkidle")
    cards = page.locator("[data-showcase]")
    assert cards.count() == len(showcased)
    best = showcased[0]
    card = cards.first
    # Model and explanation text are shown as text, never as markup.
    assert card.locator(".showcase__title").inner_text() == "<b>UN</b> resolutions"
    assert card.locator(".showcase__steered").inner_text().strip()
    browser_page.screenshot("home-showcases-light")

    card.get_by_role("link", name="Steer it live").click()
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    query = parse_qs(urlsplit(page.url).query)
    assert query["prompt"] == [best.prompt]
    assert query["f"] == [f"demo:{best.feature_index}:{best.strength:g}"]
    wait_until_done(page)
    steered, default = continuation(page, "steered"), continuation(page, "default")
    assert steered.strip() and steered != default
    # Same seed and sampling as when it was scored: the text the home page promised.
    assert steered == best.text
    browser_page.screenshot("home-showcase-steering")
    assert page_errors(browser_page) == []


@pytest.mark.parametrize(
    "browser_options", [{"color_scheme": "dark", "viewport": {"width": 1440, "height": 900}}]
)
def test_the_showcases_in_dark_mode(browser_page, live_server_url, showcased):
    page = browser_page.page
    page.goto(live_server_url + "/", wait_until="networkidle")
    assert page.locator("[data-showcase]").count() == len(showcased)
    browser_page.screenshot("home-showcases-dark")
    assert page_errors(browser_page) == []


@pytest.mark.parametrize("browser_options", [PHONE])
def test_the_showcases_fit_a_phone_screen(browser_page, live_server_url, showcased):
    page = browser_page.page
    page.goto(live_server_url + "/", wait_until="networkidle")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser_page.screenshot("home-showcases-phone")
