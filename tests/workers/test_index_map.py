"""The feature map: a 2-D UMAP of an SAE's decoder directions, stored in one SAEMap row."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from explorer.saes import indexing as svc
from explorer.saes.models import SAEMap
from explorer.saes.selectors import feature_map_point, feature_map_points
from tests.builders import build_indexed_sae, make_sae


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


@pytest.mark.slow  # numba compiles UMAP's kernels on the first layout of a process
def test_the_layout_is_the_same_for_a_seed_and_reduces_wide_directions():
    from workers.index import MAP_PCA_DIMS, map_layout

    w = np.random.default_rng(0).standard_normal((300, 2 * MAP_PCA_DIMS)).astype(np.float32)
    first = map_layout(w, seed=3)
    assert first.shape == (300, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(map_layout(w, seed=3), first)


@pytest.mark.django_db
def test_a_stored_map_gives_each_feature_its_point():
    sae = make_sae(d_sae=3)
    assert svc.map_coordinates_store(sae=sae, xs=[0.0, 0.5, 1.0], ys=[1.0, 0.5, 0.0]) == 3
    assert [feature_map_point(sae=sae, index=i) for i in range(3)] == [
        (0.0, 1.0),
        (0.5, 0.5),
        (1.0, 0.0),
    ]
    assert svc.map_is_laid_out(sae=sae)


@pytest.mark.django_db
def test_storing_a_map_again_replaces_it():
    sae = make_sae(d_sae=2)
    svc.map_coordinates_store(sae=sae, xs=[0.0, 1.0], ys=[0.0, 1.0], seconds=2.5)
    svc.map_coordinates_store(sae=sae, xs=[1.0, 0.0], ys=[0.25, 0.75])
    stored = SAEMap.objects.get(sae=sae)
    assert (stored.xs, stored.ys, stored.seconds) == ([1.0, 0.0], [0.25, 0.75], None)


@pytest.mark.django_db
def test_a_map_without_one_point_per_feature_is_refused():
    sae = make_sae(d_sae=3)
    with pytest.raises(svc.IndexRunError, match="one point per feature: 2 xs and 2 ys for 3"):
        svc.map_coordinates_store(sae=sae, xs=[0.0, 1.0], ys=[0.0, 1.0])
    assert not svc.map_is_laid_out(sae=sae)


@pytest.mark.django_db
def test_before_the_map_is_laid_out_points_are_null():
    built = build_indexed_sae(d_sae=4)
    SAEMap.objects.filter(sae=built.sae).delete()
    assert feature_map_point(sae=built.sae, index=2) == (None, None)
    points = feature_map_points(sae=built.sae)
    assert points["x"] == points["y"] == [None] * 4 and points["index"] == [0, 1, 2, 3]


@pytest.mark.django_db
def test_storing_the_map_leaves_the_feature_rows_alone():
    built = build_indexed_sae(d_sae=8)

    def versions() -> list:  # a row's xmin changes whenever the row is rewritten
        with connection.cursor() as cur:
            cur.execute(
                'SELECT xmin::text FROM saes_feature WHERE sae_id = %s ORDER BY "index"',
                [built.sae.pk],
            )
            return cur.fetchall()

    before = versions()
    svc.map_coordinates_store(sae=built.sae, xs=[0.5] * 8, ys=[0.5] * 8)
    assert versions() == before


@pytest.mark.django_db
def test_the_map_task_schedules_the_label_embeddings_when_it_ends(
    django_capture_on_commit_callbacks,
):
    from workers.index import sae_map

    with django_capture_on_commit_callbacks() as callbacks:  # not run: nothing is sent
        assert sae_map.run(999_999, then_embed=True) == {"sae": 999_999, "skipped": True}
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        sae_map.run(999_999)
    assert callbacks == []


@pytest.mark.integration
@pytest.mark.slow  # UMAP's first layout in the worker, then the embedding model's first load
@pytest.mark.django_db(transaction=True)
def test_through_a_real_worker_the_map_is_laid_out_before_the_labels_are_embedded(
    celery_worker_proc,
):
    from explorer.core import tasks
    from explorer.explanations.models import Explanation
    from explorer.search.models import ExplanationEmbedding
    from tests.helpers import wait_until
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    built = build_indexed_sae(sae=sae, examples_per_feature=1)
    SAEMap.objects.filter(sae=sae).delete()  # indexed, not laid out yet
    for f in built.features[:8]:
        Explanation.objects.create(feature=f, text=f"label {f.index}", method="offline")

    # What index_finish sends when the SAE has no map yet.
    tasks.send(tasks.SAE_MAP, queue=tasks.INDEX_QUEUE, args=(sae.pk,), kwargs={"then_embed": True})
    embedded = ExplanationEmbedding.objects.filter(explanation__feature__sae=sae)
    wait_until(
        lambda: embedded.count() == 8,
        timeout=900,
        interval=1,
        message="the labels were not embedded after the map",
    )
    laid_out = SAEMap.objects.get(sae=sae)
    assert len(laid_out.xs) == sae.d_sae
    assert laid_out.computed < embedded.order_by("created").first().created


@pytest.mark.django_db
def test_a_failed_layout_is_noted_for_the_sae_page_and_a_stored_map_clears_the_note():
    from workers.index import sae_map

    built = build_indexed_sae(d_sae=4)  # registered from no real checkpoint: loading fails
    SAEMap.objects.filter(sae=built.sae).delete()
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises, it is noted
        sae_map.run(built.sae.pk)
    assert svc.map_failure(sae_id=built.sae.pk)
    svc.map_coordinates_store(sae=built.sae, xs=[0.0] * 4, ys=[0.0] * 4)
    assert svc.map_failure(sae_id=built.sae.pk) is None
