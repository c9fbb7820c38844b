"""Migration saes/0008 converts examples of the old layout (token ids and dense float16 values
on every row) into windows and sparse rows of the SAE's partition."""

from __future__ import annotations

import importlib
import struct
from types import SimpleNamespace

import pytest
from django.db import connection

from explorer.saes.models import Feature, IndexRun, IndexWindow
from explorer.saes.selectors import stored_examples
from tests.builders import make_sae

pytestmark = pytest.mark.django_db

OLD_TABLE = """
CREATE TABLE saes_example_old (
    id bigserial PRIMARY KEY, feature_id bigint NOT NULL, kind varchar(10) NOT NULL,
    quantile_index smallint, quantile_low double precision, quantile_high double precision,
    token_ids integer[] NOT NULL, "values" bytea NOT NULL, max_value double precision NOT NULL,
    max_position integer NOT NULL, document bigint NOT NULL, "offset" integer NOT NULL
)
"""


def old_row(cur, feature, kind, q, ids, values, document, offset):
    cur.execute(
        'INSERT INTO saes_example_old (feature_id, kind, quantile_index, token_ids, "values",'
        ' max_value, max_position, document, "offset") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)',
        [
            feature.pk,
            kind,
            q,
            ids,
            struct.pack(f"<{len(values)}e", *values),
            max(values),
            values.index(max(values)),
            document,
            offset,
        ],
    )


def test_old_examples_become_shared_windows_and_sparse_rows():
    sae = make_sae(d_sae=2)
    f0 = Feature.objects.create(sae=sae, index=0, quantile_bounds=[0.0, 1.0, 2.0])
    f1 = Feature.objects.create(sae=sae, index=1, quantile_bounds=[0.0, 1.0, 2.0])
    migration = importlib.import_module("explorer.saes.migrations.0008_compact_examples")
    with connection.cursor() as cur:
        cur.execute(OLD_TABLE)
        old_row(cur, f0, "top", None, [5, 6, 7], [0.0, 2.0, 0.5], 3, 0)
        old_row(cur, f1, "top", None, [5, 6, 7], [1.0, 0.0, 0.0], 3, 0)  # the same window
        old_row(cur, f1, "quantile", 0, [8, 9], [0.0, 0.75], 4, 10)

        migration.convert(None, SimpleNamespace(connection=connection))

    run = IndexRun.objects.get(sae=sae)
    assert (run.corpus, run.status) == ("migrated", "done")
    assert IndexWindow.objects.filter(run=run).count() == 2
    got = stored_examples(sae_id=sae.pk, feature_indices=[0, 1])
    assert [(e.feature_index, e.kind, e.token_ids, e.values) for e in got] == [
        (0, "top", [5, 6, 7], [0.0, 2.0, 0.5]),
        (1, "top", [5, 6, 7], [1.0, 0.0, 0.0]),
        (1, "quantile", [8, 9], [0.0, 0.75]),
    ]
    assert (got[2].document, got[2].offset, got[2].quantile_high) == (4, 10, 1.0)
