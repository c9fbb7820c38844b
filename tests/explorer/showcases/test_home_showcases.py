"""The home page's "Try this" section and the showcase reads behind it (no model needed:
showcases are stored rows here)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from explorer.showcases import selectors, services
from explorer.showcases.services import ShowcaseRow
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db

SAMPLING = {"temperature": 0.7, "top_p": 0.95, "seed": 0, "max_new_tokens": 24}


def row(index: int, score: float, **overrides) -> ShowcaseRow:
    fields = {
        "feature_index": index,
        "prompt": "I think that",
        "strength": 12.5,
        "score": score,
        "fluency_drop": 0.4,
        "distinct": 0.9,
        "text": " the river bank",
        "default_text": " it was fine",
        "label": "rivers",
        "settings": SAMPLING,
    }
    return ShowcaseRow(**{**fields, **overrides})


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=16)


def test_the_home_page_links_each_showcase_to_live_steering(client, indexed):
    services.showcases_replace(sae=indexed.sae, rows=[row(3, 4.0), row(5, 2.0)])
    body = client.get("/").content.decode()
    assert body.count("data-showcase") == 2
    assert "Try this" in body
    assert body.index('href="/tiny/res-1/3/"') < body.index('href="/tiny/res-1/5/"')
    url = selectors.home_showcases(limit=4)[0].steer_url
    assert f'href="{url.replace("&", "&amp;")}"' in body


def test_a_showcase_link_holds_the_prompt_feature_and_sampling_it_was_scored_with(indexed):
    services.showcases_replace(sae=indexed.sae, rows=[row(3, 4.0, prompt="Yesterday we & co")])
    (card,) = selectors.home_showcases(limit=4)
    parts = urlsplit(card.steer_url)
    assert parts.path == "/tiny/steer/"
    assert parse_qs(parts.query) == {
        "prompt": ["Yesterday we & co"],
        "f": ["res-1:3:12.5"],
        "t": ["0.7"],
        "p": ["0.95"],
        "seed": ["0"],
        "n": ["24"],
    }


def test_model_text_and_labels_are_escaped_on_the_home_page(client, indexed):
    services.showcases_replace(
        sae=indexed.sae,
        rows=[row(3, 4.0, text="<script>alert(1)</script>", label="<img src=x onerror=alert(1)>")],
    )
    body = client.get("/").content.decode()
    assert "<script>alert(1)" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_without_showcases_the_section_is_left_out(client, indexed):
    assert "data-showcase" not in client.get("/").content.decode()


def test_the_home_page_shows_each_saes_best_showcases_first(indexed):
    from tests.builders import make_sae

    other = build_indexed_sae(sae=make_sae(model=indexed.sae.model, slug="res-0", source="o"))
    services.showcases_replace(sae=indexed.sae, rows=[row(1, 9.0), row(2, 8.0)])
    services.showcases_replace(sae=other.sae, rows=[row(4, 3.0)])
    cards = selectors.home_showcases(limit=2)
    assert [(c.sae, c.showcase.feature_index) for c in cards] == [("res-1", 1), ("res-0", 4)]


def test_replacing_an_saes_showcases_leaves_other_saes_alone(indexed):
    from tests.builders import make_sae

    other = build_indexed_sae(sae=make_sae(model=indexed.sae.model, slug="res-0", source="o"))
    services.showcases_replace(sae=other.sae, rows=[row(4, 3.0)])
    services.showcases_replace(sae=indexed.sae, rows=[row(1, 9.0)])
    assert services.showcases_replace(sae=indexed.sae, rows=[]) == 0
    assert [c.sae for c in selectors.home_showcases(limit=9)] == ["res-0"]


def test_candidates_are_live_features_by_density_times_logit_effect(indexed):
    from explorer.saes.models import Feature

    features = Feature.objects.filter(sae=indexed.sae)
    features.filter(index=4).update(density=0.5, top_logit_values=[30.0, 1.0])  # the largest
    features.filter(index=6).update(top_logit_values=[-1.0])  # pushes nothing up: left out
    got = selectors.showcase_candidates(sae=indexed.sae, limit=5)
    live = [f for f in features if not f.dead and f.index != 6]
    expected = sorted(live, key=lambda f: (-f.density * f.top_logit_values[0], f.index))[:5]
    assert [c.index for c in got] == [f.index for f in expected]
    assert got[0].index == 4
    assert all(c.index not in indexed.dead for c in got)
    top = next(f for f in live if f.index == got[0].index)
    assert (got[0].max_activation, got[0].top_logit_ids) == (top.max_activation, top.top_logit_ids)
