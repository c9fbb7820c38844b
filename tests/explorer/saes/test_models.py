"""The data model's storage contracts (explorer/saes/models.py)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from explorer.saes.models import SAE, Example, Feature, LanguageModel
from explorer.saes.selectors import stored_examples
from tests.builders import ExampleRow, store_examples

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


def test_example_values_round_trip_as_sparse_float16(feature):
    values = [0.0, 1.5, 0.0, 65504.0]
    store_examples(
        feature.sae,
        [
            ExampleRow(
                feature_index=3,
                kind="top",
                token_ids=[0, 1, 2, 1],
                values=values,
                max_value=65504.0,
                max_position=3,
                document=7,
                offset=128,
            )
        ],
    )

    (stored,) = stored_examples(sae_id=feature.sae_id, feature_indices=[3])
    assert stored.values == values
    assert (stored.token_ids, stored.document, stored.offset) == ([0, 1, 2, 1], 7, 128)
    row = Example.objects.get(sae_id=feature.sae_id)
    assert len(bytes(row.nz)) == 1 + 2 * 2  # a 4-token bitmap (1 byte), then two float16
    assert row.peak_token == 1


def test_a_feature_index_is_unique_within_its_sae(feature):
    with pytest.raises(IntegrityError):
        Feature.objects.create(sae=feature.sae, index=3)


def test_a_quantile_example_reads_its_bounds_from_the_feature(feature):
    Feature.objects.filter(pk=feature.pk).update(quantile_bounds=[0.0, 0.5, 1.5, 2.5])
    store_examples(
        feature.sae,
        [
            ExampleRow(
                feature_index=3,
                kind="quantile",
                quantile_index=1,
                token_ids=[1],
                values=[1.0],
                max_value=1.0,
                max_position=0,
            )
        ],
    )

    (stored,) = stored_examples(sae_id=feature.sae_id, feature_indices=[3])
    assert (stored.kind, stored.quantile_index) == ("quantile", 1)
    assert (stored.quantile_low, stored.quantile_high) == (0.5, 1.5)
