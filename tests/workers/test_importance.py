"""workers/importance.py: a bulk chunk on the `index` queue of a real worker, over the demo
model with synthetic example windows (demo vocabulary ids), and the in-process task body."""

from __future__ import annotations

import pytest

from explorer.importance import services
from explorer.importance.models import FeatureImportance
from tests.builders import build_indexed_sae

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_features(transactional_db):
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    built = build_indexed_sae(sae=sae, examples_per_feature=4, context=24)
    return [f for f in built.features if not f.dead][:3]


def test_a_bulk_chunk_stores_every_feature_on_the_index_queue(demo_features, celery_worker_proc):
    from workers.importance import compute_features

    ids = [f.pk for f in demo_features]
    FeatureImportance.objects.bulk_create([FeatureImportance(feature_id=i) for i in ids])
    assert (
        compute_features.apply_async(kwargs={"feature_ids": ids}, queue="index").get(timeout=120)
        == 3
    )
    rows = FeatureImportance.objects.filter(feature_id__in=ids)
    assert {r.status for r in rows} == {"done"}
    for r in rows:
        assert r.n_contexts == 5  # 4 top windows + 1 quantile sample
        assert r.n_predictions == 4 * 23 + 3
        assert None not in (r.loss_zero, r.loss_mean, r.loss_resample)
        assert r.progress == 1.0 and r.computed_at is not None


def test_a_row_that_is_not_queued_is_not_taken_again(demo_features):
    from workers.importance import compute_importance

    feature = demo_features[0]
    FeatureImportance.objects.create(feature=feature, status="running")
    assert compute_importance([feature.pk]) == 0
    assert services.importance_start(feature_ids=[feature.pk]) == []


def test_a_failure_is_recorded_where_the_page_shows_it(demo_features):
    feature = demo_features[0]
    FeatureImportance.objects.create(feature=feature, status="running")
    services.importance_fail(feature_ids=[feature.pk], error="ValueError: bad checkpoint")
    row = FeatureImportance.objects.get(feature=feature)
    assert (row.status, row.error) == ("failed", "ValueError: bad checkpoint")
