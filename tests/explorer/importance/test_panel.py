"""The importance card on the feature page and the overview card on the SAE page."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from explorer.importance.models import FeatureImportance
from explorer.saes.models import Feature
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=12)


def render(feature) -> str:
    return Template(
        "{% load importance_tags %}{% importance_panel feature 'tiny' 'res-1' %}"
    ).render(Context({"feature": feature}))


def test_the_feature_page_has_the_card_rendered_from_its_row(client, indexed):
    body = client.get("/tiny/res-1/3/").content.decode()
    assert (
        'data-importance data-endpoint="/api/v1/models/tiny/saes/res-1/features/3/importance"'
        in body
    )
    assert 'data-status=""' in body and "Not computed yet." in body  # loaded with the page
    assert "Compute importance" in body


def test_a_feature_loaded_with_its_importance_renders_the_numbers(indexed):
    FeatureImportance.objects.create(
        feature=indexed.features[3],
        status="done",
        loss_zero=0.25,
        loss_mean=0.5,
        loss_resample=-0.125,
        n_contexts=4,
        n_predictions=40,
        down_token_ids=[9],
        down_values=[-0.1],
    )
    feature = Feature.objects.select_related("importance", "sae__model").get(
        pk=indexed.features[3].pk
    )
    html = render(feature)
    assert 'data-status="done"' in html
    assert '<dd data-importance-value="zero">0.25</dd>' in html
    assert '<dd data-importance-value="resample">\u22120.125</dd>' in html
    assert "&lt;script&gt;" in html and "<script>" not in html  # token 9 is " <script>"
    assert "Recompute importance" in html


def test_a_feature_loaded_without_a_row_renders_not_computed(indexed):
    feature = Feature.objects.select_related("importance", "sae__model").get(
        pk=indexed.features[3].pk
    )
    html = render(feature)
    assert 'data-status=""' in html and "Not computed yet." in html


def test_the_sae_page_has_the_overview_card(client, indexed):
    body = client.get("/tiny/res-1/").content.decode()
    assert 'data-importance-overview data-src="/api/v1/models/tiny/saes/res-1/importance"' in body
    assert "data-cosine-histogram" in body


def test_a_dead_feature_has_no_importance_card(client, indexed):
    assert "data-importance" not in client.get("/tiny/res-1/0/").content.decode()
