"""The data model's storage contracts (explorer/saes/models.py)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from explorer.saes.models import SAE, Example, Feature, LanguageModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def feature() -> Feature:
    model = LanguageModel.objects.create(
        slug="m",
        source="m",
        architecture="gpt2",
        d_model=4,
        n_layers=1,
        n_ctx=8,
        vocab=["a", "b", "\u2400"],
    )
    sae = SAE.objects.create(
        model=model,
        slug="s",
        source="s",
        hook_name="blocks.0.hook_resid_post",
        layer=0,
        d_in=4,
        d_sae=8,
        architecture="standard",
    )
    return Feature.objects.create(
        sae=sae,
        index=3,
        density=0.1,
        max_activation=2.5,
        hist_edges=[0.0, 1.0, 2.5],
        hist_counts=[3, 1],
    )


def test_example_values_round_trip_as_float16_bytes(feature):
    values = [0.0, 1.5, 2.25, 65504.0]
    Example.objects.create(
        feature=feature,
        kind="top",
        token_ids=[0, 1, 2, 1],
        values=Example.pack_values(values),
        max_value=65504.0,
        max_position=3,
        document=7,
        offset=128,
    )

    stored = Example.objects.get()
    assert len(bytes(stored.values)) == 2 * len(stored.token_ids)
    assert Example.unpack_values(stored.values) == values


def test_a_feature_index_is_unique_within_its_sae(feature):
    with pytest.raises(IntegrityError):
        Feature.objects.create(sae=feature.sae, index=3)


def test_a_quantile_example_needs_its_bin_and_a_top_example_has_none(feature):
    common = {
        "feature": feature,
        "token_ids": [1],
        "values": Example.pack_values([1.0]),
        "max_value": 1.0,
        "max_position": 0,
        "document": 0,
        "offset": 0,
    }
    Example.objects.create(
        kind="quantile", quantile_index=2, quantile_low=0.5, quantile_high=1.5, **common
    )
    with pytest.raises(IntegrityError):
        Example.objects.create(kind="quantile", **common)
