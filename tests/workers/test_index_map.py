"""The feature map: a 2-D UMAP of the demo SAE's decoder directions, stored per feature."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.saes import indexing as svc
from explorer.saes.models import Feature
from tests.builders import make_sae


@pytest.mark.slow  # UMAP over the demo SAE's decoder: about 15 s on two cores
def test_map_coordinates_cover_every_feature_in_the_unit_square():
    from workers.index import map_coordinates
    from workers.resident import attached_sae

    att = attached_sae("demo", "demo")
    xs, ys = map_coordinates(att)
    assert len(xs) == len(ys) == att.d_sae
    xy = np.array([xs, ys])
    assert xy.min() == 0.0 and xy.max() == 1.0
    assert len({(round(x, 6), round(y, 6)) for x, y in zip(xs, ys, strict=True)}) > att.d_sae // 2


@pytest.mark.django_db
def test_stored_coordinates_land_on_their_features():
    sae = make_sae(d_sae=3)
    Feature.objects.bulk_create(Feature(sae=sae, index=i) for i in range(3))
    assert svc.map_coordinates_store(sae=sae, xs=[0.0, 0.5, 1.0], ys=[1.0, 0.5, 0.0]) == 3
    got = dict(Feature.objects.filter(sae=sae).values_list("index", "map_x"))
    assert got == {0: 0.0, 1: 0.5, 2: 1.0}
