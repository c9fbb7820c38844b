"""index_results_replace: features updated in place, examples swapped in as the SAE's partition
(explorer/saes/indexing.py), read back through stored_examples."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from explorer.saes.example_copy import ExampleArrays, WindowArrays, partition_name
from explorer.saes.indexing import FeatureRow, example_partitions, index_results_replace
from explorer.saes.models import Feature, IndexRun, IndexWindow
from explorer.saes.selectors import storage_bytes, stored_examples
from tests.builders import make_sae

D_SAE = 4
CONTEXT = 6


def feature_rows(scale: float = 1.0) -> list[FeatureRow]:
    return [
        FeatureRow(
            index=i,
            density=0.01 * (i + 1),
            max_activation=2.0 * scale,
            mean_activation=0.5,
            hist_edges=[0.0, 1.0, 2.0],
            hist_counts=[3, 1],
            quantile_bounds=[0.0, 1.0 * scale, 2.0 * scale],
            quantile_fractions=[0.75, 0.25],
            top_logit_ids=[1],
            top_logit_values=[0.5],
            bottom_logit_ids=[2],
            bottom_logit_values=[-0.5],
            neighbour_indices=[(i + 1) % D_SAE],
            neighbour_cosines=[0.3],
            dead=False,
        )
        for i in range(D_SAE)
    ]


def windows() -> WindowArrays:
    return WindowArrays(
        number=np.array([10, 11, 12]),
        token_ids=np.arange(3 * CONTEXT).reshape(3, CONTEXT),
        lengths=np.array([CONTEXT, CONTEXT, 4]),
        document=np.array([5, 5, 6]),
        offset=np.array([0, 6, 0]),
    )


def chunk(features: list[int], window: list[int], top: bool = True) -> ExampleArrays:
    """One example per feature, its maximum 1.5 at position 1 and 0.25 at position 3."""
    n = len(features)
    return ExampleArrays(
        feature_index=np.array(features),
        kind=np.full(n, 0 if top else 1),
        quantile_index=np.zeros(n, np.int64),
        quantile_low=np.zeros(n),
        quantile_high=np.ones(n),
        window=np.array(window),
        max_value=np.full(n, 1.5),
        max_position=np.ones(n, np.int64),
        nz_offsets=np.arange(0, 2 * n + 1, 2),
        nz_positions=np.tile([1, 3], n),
        nz_values=np.tile(np.array([1.5, 0.25], np.float16), n),
    )


def chunks():
    yield chunk([0, 1, 2, 3], [10, 11, 12, 10])
    yield chunk([0, 1], [11, 12], top=False)


def replace(sae, examples=None, features=None, w=None) -> IndexRun:
    run = IndexRun.objects.create(sae=sae, corpus="demo", tokens=100)
    index_results_replace(
        run=run,
        features=features or feature_rows(),
        windows=w or windows(),
        examples=chunks() if examples is None else examples,
        timings={"store": 0.1},
    )
    return run


@pytest.mark.django_db
def test_the_stored_examples_read_back_with_their_windows_and_dense_values():
    sae = make_sae(d_sae=D_SAE)
    run = replace(sae)

    run.refresh_from_db()
    assert run.status == IndexRun.Status.DONE
    assert run.options["examples"] == 6
    got = stored_examples(sae_id=sae.pk, feature_indices=[0, 2])
    assert [(e.feature_index, e.kind) for e in got] == [(0, "top"), (0, "quantile"), (2, "top")]
    top, quantile, short = got
    assert top.token_ids == list(range(CONTEXT))
    assert (top.document, top.offset) == (5, 0)
    assert top.values == [0.0, 1.5, 0.0, 0.25, 0.0, 0.0]
    assert (quantile.quantile_index, quantile.quantile_low, quantile.quantile_high) == (0, 0.0, 1.0)
    assert short.token_ids == [12, 13, 14, 15]
    assert len(short.values) == 4


@pytest.mark.django_db
def test_a_reindex_keeps_feature_ids_and_leaves_one_partition_and_one_runs_windows():
    sae = make_sae(d_sae=D_SAE)
    first = replace(sae)
    ids = dict(Feature.objects.filter(sae=sae).values_list("index", "id"))

    second = replace(sae, features=feature_rows(scale=2.0))

    assert dict(Feature.objects.filter(sae=sae).values_list("index", "id")) == ids
    assert Feature.objects.get(sae=sae, index=0).max_activation == 4.0
    with connection.cursor() as cur:
        assert example_partitions(cur, sae.pk) == [partition_name(sae.pk, second.pk)]
    assert not IndexWindow.objects.filter(run=first).exists()
    assert IndexWindow.objects.filter(run=second).count() == 3
    (q,) = stored_examples(sae_id=sae.pk, feature_indices=[1], kind="quantile")
    assert q.quantile_high == 2.0  # the new bounds


@pytest.mark.django_db
def test_an_identical_reindex_rewrites_no_feature_row():
    sae = make_sae(d_sae=D_SAE)
    replace(sae)
    with connection.cursor() as cur:
        cur.execute("SELECT id, xmin::text FROM saes_feature WHERE sae_id = %s", [sae.pk])
        before = cur.fetchall()
        replace(sae)
        cur.execute("SELECT id, xmin::text FROM saes_feature WHERE sae_id = %s", [sae.pk])
        assert cur.fetchall() == before


@pytest.mark.django_db
def test_a_failed_load_leaves_the_old_examples_and_no_staged_table():
    sae = make_sae(d_sae=D_SAE)
    first = replace(sae)

    def broken():
        yield chunk([0], [10])
        yield chunk([1], [99])  # not a window of the run

    with pytest.raises(ValueError, match="window 99"):
        replace(sae, examples=broken())

    with connection.cursor() as cur:
        assert example_partitions(cur, sae.pk) == [partition_name(sae.pk, first.pk)]
        cur.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s",
            [f"saes_example_{sae.pk}_r%"],
        )
        assert cur.fetchall() == [(partition_name(sae.pk, first.pk),)]
    assert len(stored_examples(sae_id=sae.pk, feature_indices=range(D_SAE))) == 6
    assert IndexWindow.objects.filter(run__sae=sae).exclude(run=first).count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_second_identical_index_does_not_grow_the_sae_on_disk():
    sae = make_sae(d_sae=D_SAE)

    def many():  # enough rows that pages, not headers, dominate
        for _ in range(50):
            yield chunk([0, 1, 2, 3] * 25, [10, 11, 12, 10] * 25)

    replace(sae, examples=many())
    after_first = storage_bytes(sae=sae)
    replace(sae, examples=many())
    after_second = storage_bytes(sae=sae)

    assert after_first["n_examples"] == after_second["n_examples"] == 5000
    assert after_second["total"] <= 1.1 * after_first["total"]


@pytest.mark.django_db(transaction=True)
def test_a_swap_waiting_for_a_long_reader_tries_again_until_it_gets_its_lock(monkeypatch):
    import threading
    import time

    from explorer.saes import indexing

    monkeypatch.setattr(indexing, "SWAP_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(indexing, "SWAP_PATIENCE_S", 30.0)
    sae = make_sae(d_sae=D_SAE)
    replace(sae)
    import psycopg

    from explorer.env import database_url_from_settings

    reader = psycopg.connect(database_url_from_settings(connection.settings_dict))
    # An export's long read: a shared lock on the examples until it commits.
    reader.execute("SELECT count(*) FROM saes_example WHERE sae_id = %s", [sae.pk])
    threading.Timer(1.5, reader.commit).start()
    started = time.monotonic()
    try:
        run = replace(sae)
    finally:
        time.sleep(0.1)
        reader.close()

    assert time.monotonic() - started >= 1.5
    run.refresh_from_db()
    assert run.status == IndexRun.Status.DONE
    with connection.cursor() as cur:
        assert example_partitions(cur, sae.pk) == [partition_name(sae.pk, run.pk)]
