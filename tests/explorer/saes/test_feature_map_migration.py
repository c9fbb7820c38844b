"""Migration 0007: map coordinates move from the feature rows to one SAEMap row per SAE, and
back when it is unapplied."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("saes", "0006_sae_evaluation")]
AFTER = [("saes", "0007_feature_map")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _sae(apps, slug: str, coordinates: list[tuple[float | None, float | None]]):
    LanguageModel = apps.get_model("saes", "LanguageModel")
    SAE = apps.get_model("saes", "SAE")
    Feature = apps.get_model("saes", "Feature")
    model, _ = LanguageModel.objects.get_or_create(
        slug="m", source="m", architecture="gpt2", d_model=4, n_layers=1, n_ctx=8
    )
    sae = SAE.objects.create(
        model=model,
        slug=slug,
        source=slug,
        hook_name="blocks.0.hook_resid_post",
        layer=0,
        d_in=4,
        d_sae=len(coordinates),
        architecture="topk",
    )
    Feature.objects.bulk_create(
        Feature(sae=sae, index=i, map_x=x, map_y=y) for i, (x, y) in enumerate(coordinates)
    )
    return sae.pk


def test_complete_maps_move_to_one_row_per_sae_and_back():
    try:
        apps = _migrate(BEFORE)
        full = _sae(apps, "full", [(0.5, 0.25), (0.0, 1.0), (1.0, 0.0)])
        partial = _sae(apps, "partial", [(0.5, 0.25), (None, None)])
        apps = _migrate(AFTER)
        SAEMap = apps.get_model("saes", "SAEMap")
        stored = SAEMap.objects.get(sae_id=full)
        assert (stored.xs, stored.ys) == ([0.5, 0.0, 1.0], [0.25, 1.0, 0.0])
        assert not SAEMap.objects.filter(sae_id=partial).exists()  # laid out again next time
        apps = _migrate(BEFORE)
        Feature = apps.get_model("saes", "Feature")
        assert list(
            Feature.objects.filter(sae_id=full).order_by("index").values_list("map_x", "map_y")
        ) == [(0.5, 0.25), (0.0, 1.0), (1.0, 0.0)]
    finally:
        _migrate(AFTER)
