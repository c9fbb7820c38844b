"""Importance under ablation in headless Chromium: the demo SAE indexed for real, the feature
page's button computing on the real Celery worker (queue live.demo), and the SAE overview."""

from __future__ import annotations

import json
import random
import shutil

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WORDS = [
    "the",
    "state",
    "of",
    "the",
    "union",
    "was",
    "read",
    "to",
    "the",
    "people",
    ".",
    "she",
    "said",
    "that",
    "the",
    "weather",
    "in",
    "the",
    "city",
    "would",
    "be",
    "fine",
    ",",
    "and",
    "the",
    "market",
    "rose",
    "by",
    "3",
    "percent",
    "on",
    "monday",
    "while",
    "the",
    "river",
    "ran",
    "high",
]


@pytest.fixture
def demo_indexed(transactional_db, celery_worker_proc, tmp_path):
    """The demo SAE indexed for real over a small corpus; returns its densest live feature."""
    from django.core.management import call_command

    from explorer.saes.models import Feature
    from workers.registration import sae_register_from_specs

    rng = random.Random(0)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(80))}) + "\n"
            for _ in range(60)
        )
    )
    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    call_command(
        "index_sae", "demo/demo", corpus=str(corpus), tokens=3000, context=32, batch_size=8
    )
    return Feature.objects.filter(sae=sae, dead=False).order_by("-density").first()


def errors(browser_page) -> list[str]:
    return [e for e in browser_page.console_errors if not e.endswith("/favicon.ico")]


def test_the_importance_button_fills_in_numbers_and_the_overview_plots_them(
    browser_page, live_server_url, demo_indexed, tmp_path
):
    from explorer.importance.models import FeatureImportance

    page = browser_page.page
    page.goto(f"{live_server_url}/demo/demo/{demo_indexed.index}/", wait_until="networkidle")
    card = page.locator("[data-importance]")
    assert card.locator('[data-importance-value="zero"]').text_content() == "—"
    assert card.get_attribute("data-status") == ""  # read from the API: never requested
    card.locator("[data-importance-compute]").click()
    page.locator('[data-importance][data-status="done"]').wait_for(timeout=90_000)
    values = {
        m: card.locator(f'[data-importance-value="{m}"]').text_content()
        for m in ("zero", "mean", "resample")
    }
    row = FeatureImportance.objects.get(feature=demo_indexed)
    assert row.status == "done" and row.n_contexts > 0 and row.loss_zero is not None
    assert float(values["zero"].replace("\u2212", "-")) == pytest.approx(
        row.loss_zero, rel=1e-2, abs=1e-3
    )
    assert all(v not in ("—", "–") for v in values.values())
    assert "example windows" in card.locator("[data-importance-note]").text_content()
    shutil.copy(browser_page.screenshot("feature-importance"), tmp_path / "feature-importance.png")

    page.goto(f"{live_server_url}/demo/demo/", wait_until="networkidle")
    overview = page.locator("[data-importance-overview]")
    overview.scroll_into_view_if_needed()  # its data is fetched when it comes into view
    overview.locator("[data-importance-scatter][data-chart-rendered]").wait_for()
    assert overview.locator("circle.dot").count() == 1
    assert overview.locator(f'circle.dot[data-index="{demo_indexed.index}"]').count() == 1
    assert (
        "no importance yet and are omitted"
        in overview.locator("[data-importance-omitted]").text_content()
    )
    assert overview.locator("[data-cosine-histogram] rect.bar").count() > 0
    shutil.copy(browser_page.screenshot("sae-overview"), tmp_path / "sae-overview.png")
    assert errors(browser_page) == []
    assert browser_page.failed_requests == []
