"""Migration 0007: map coordinates move from the feature rows to one SAEMap row per SAE, and
back when it is unapplied. Its SQL runs here on the two old columns, added for the test (the
later examples migration is one-way, so the schema itself cannot be migrated back)."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from explorer.saes.models import Feature, SAEMap
from tests.builders import make_language_model, make_sae

pytestmark = pytest.mark.django_db

migration = importlib.import_module("explorer.saes.migrations.0007_feature_map")


def _sae(model, slug: str, coordinates: list[tuple[float | None, float | None]]) -> int:
    sae = make_sae(model, slug=slug, source=slug, d_sae=len(coordinates))
    Feature.objects.bulk_create(Feature(sae=sae, index=i) for i in range(len(coordinates)))
    with connection.cursor() as cur:
        for i, (x, y) in enumerate(coordinates):
            cur.execute(
                'UPDATE saes_feature SET map_x = %s, map_y = %s WHERE sae_id = %s AND "index" = %s',
                [x, y, sae.pk, i],
            )
    return sae.pk


def test_complete_maps_move_to_one_row_per_sae_and_back():
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE saes_feature ADD COLUMN map_x float8, ADD COLUMN map_y float8")
    model = make_language_model()
    full = _sae(model, "full", [(0.5, 0.25), (0.0, 1.0), (1.0, 0.0)])
    partial = _sae(model, "partial", [(0.5, 0.25), (None, None)])
    with connection.cursor() as cur:
        cur.execute(migration.FORWARD)
    stored = SAEMap.objects.get(sae_id=full)
    assert (stored.xs, stored.ys) == ([0.5, 0.0, 1.0], [0.25, 1.0, 0.0])
    assert not SAEMap.objects.filter(sae_id=partial).exists()  # laid out again next time
    with connection.cursor() as cur:
        cur.execute("UPDATE saes_feature SET map_x = NULL, map_y = NULL")
        cur.execute(migration.BACKWARD)
        cur.execute(
            'SELECT map_x, map_y FROM saes_feature WHERE sae_id = %s ORDER BY "index"', [full]
        )
        assert cur.fetchall() == [(0.5, 0.25), (0.0, 1.0), (1.0, 0.0)]
