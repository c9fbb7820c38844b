"""Compact examples: windows stored once per index run, values sparse, one partition per SAE.

The old saes_example (token ids and dense float16 values on every row, ~1 KB an example) is
converted: each SAE's examples get the SAE's latest index run (a "migrated" run is recorded
for an SAE that has none), its distinct windows become IndexWindow rows of that run, and its
examples go into the SAE's partition with their values sparsified. The old table and its
peak-token expression index (search/0001) are dropped; the partitions index `peak_token`
instead (explorer/saes/example_copy.py `partition_index_sql`).
"""

import numpy as np
from django.contrib.postgres.fields import ArrayField
from django.db import migrations, models

from explorer.saes import example_copy as ec

BATCH = 20_000


def _run_for(cur, sae_id: int) -> int:
    cur.execute(
        "SELECT id FROM saes_indexrun WHERE sae_id = %s ORDER BY (status = 'done') DESC, "
        "created DESC, id DESC LIMIT 1",
        [sae_id],
    )
    row = cur.fetchone()
    if row:
        return row[0]
    cur.execute(
        "INSERT INTO saes_indexrun (sae_id, corpus, tokens, shards, options, status, tokens_done,"
        " tokens_total, timings, error, created, finished) VALUES (%s, 'migrated', 0, 1, '{}',"
        " 'done', 0, 0, '{}', '', now(), now()) RETURNING id",
        [sae_id],
    )
    return cur.fetchone()[0]


def convert(apps, schema_editor) -> None:
    conn = schema_editor.connection
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT f.sae_id FROM saes_example_old e JOIN saes_feature f "
            "ON f.id = e.feature_id ORDER BY 1"
        )
        for (sae_id,) in cur.fetchall():
            _convert_sae(conn, sae_id)


def _convert_sae(conn, sae_id: int) -> None:
    with conn.cursor() as cur:
        raw = cur.cursor
        run_id = _run_for(cur, sae_id)
        cur.execute(
            'SELECT DISTINCT e.document, e."offset", e.token_ids FROM saes_example_old e '
            "JOIN saes_feature f ON f.id = e.feature_id WHERE f.sae_id = %s "
            'ORDER BY e.document, e."offset"',
            [sae_id],
        )
        found = cur.fetchall()
        key = {(d, o, tuple(t)): i for i, (d, o, t) in enumerate(found)}
        width = max(len(t) for _, _, t in found)
        tokens = np.zeros((len(found), width), np.int32)
        for i, (_, _, t) in enumerate(found):
            tokens[i, : len(t)] = t
        windows = ec.WindowArrays(
            number=np.arange(len(found)),
            token_ids=tokens,
            lengths=np.array([len(t) for _, _, t in found]),
            document=np.array([d for d, _, _ in found], np.int64),
            offset=np.array([o for _, o, _ in found], np.int64),
        )
        cur.execute(f"DELETE FROM {ec.WINDOW_TABLE} WHERE run_id = %s", [run_id])
        with raw.copy(
            f"COPY {ec.WINDOW_TABLE} ({ec.column_list(ec.WINDOW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            for chunk in ec.window_copy_chunks(windows, run_id):
                cp.write(chunk)
        cur.execute(f"SELECT number, id FROM {ec.WINDOW_TABLE} WHERE run_id = %s", [run_id])
        index = ec.WindowIndex.of(windows, dict(cur.fetchall()))
        for sql in ec.partition_create_sql(sae_id, run_id):
            cur.execute(sql)
        table = ec.partition_name(sae_id, run_id)
        cur.execute(
            "SELECT f.index, e.kind, e.quantile_index, e.max_value, e.max_position, e.document, "
            'e."offset", e.token_ids, e."values" FROM saes_example_old e '
            "JOIN saes_feature f ON f.id = e.feature_id WHERE f.sae_id = %s",
            [sae_id],
        )
        with (
            conn.connection.cursor() as write,
            write.copy(
                f"COPY {table} ({ec.column_list(ec.EXAMPLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            ) as cp,
        ):
            cp.write(ec.SIGNATURE)
            while rows := cur.fetchmany(BATCH):
                cp.write(ec.example_copy_rows(_arrays(rows, key), sae_id, index))
            cp.write(ec.TRAILER)
        for sql in ec.partition_index_sql(sae_id, run_id):
            cur.execute(sql)
        cur.execute(
            f"ALTER TABLE {ec.EXAMPLE_TABLE} ATTACH PARTITION {table} FOR VALUES IN ({int(sae_id)})"
        )


def _arrays(rows: list[tuple], key: dict) -> ec.ExampleArrays:
    n = len(rows)
    offsets = [0]
    positions, values = [], []
    for r in rows:
        dense = np.frombuffer(bytes(r[8]), "<f2")
        pos, val = ec.sparsify(dense)
        positions.append(pos)
        values.append(val)
        offsets.append(offsets[-1] + len(pos))
    quantile = np.array([r[1] == "quantile" for r in rows])
    return ec.ExampleArrays(
        feature_index=np.array([r[0] for r in rows], np.int64),
        kind=quantile.astype(np.int64),
        quantile_index=np.array([r[2] or 0 for r in rows], np.int64),
        quantile_low=np.zeros(n),
        quantile_high=np.zeros(n),
        window=np.array([key[(r[5], r[6], tuple(r[7]))] for r in rows], np.int64),
        max_value=np.array([r[3] for r in rows], np.float64),
        max_position=np.array([r[4] for r in rows], np.int64),
        nz_offsets=np.array(offsets, np.int64),
        nz_positions=np.concatenate(positions) if positions else np.zeros(0, np.int64),
        nz_values=np.concatenate(values) if values else np.zeros(0, np.float16),
    )


class Migration(migrations.Migration):
    dependencies = [  # noqa: RUF012
        ("saes", "0007_feature_map"),
        ("search", "0001_example_peak_token"),  # its index goes with the old table
    ]

    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="IndexWindow",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("number", models.IntegerField()),
                ("token_ids", ArrayField(base_field=models.IntegerField(), size=None)),
                ("document", models.BigIntegerField()),
                ("offset", models.PositiveIntegerField()),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE,
                        related_name="windows",
                        to="saes.indexrun",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "number"), name="indexwindow_unique_per_run"
                    )
                ],
            },
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL("ALTER TABLE saes_example RENAME TO saes_example_old"),
                migrations.RunSQL(ec.PARENT_DDL),
            ],
            state_operations=[
                migrations.DeleteModel(name="Example"),
                migrations.CreateModel(
                    name="Example",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "sae_id",
                                "feature_index",
                                "bin",
                                "window_id",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("feature_index", models.IntegerField()),
                        ("window_id", models.IntegerField()),
                        ("max_value", models.FloatField()),
                        ("bin", models.SmallIntegerField()),
                        ("max_position", models.SmallIntegerField()),
                        ("peak_token", models.IntegerField()),
                        ("nz", models.BinaryField()),
                        (
                            "sae",
                            models.ForeignKey(
                                db_constraint=False,
                                on_delete=models.deletion.DO_NOTHING,
                                related_name="+",
                                to="saes.sae",
                            ),
                        ),
                    ],
                    options={"db_table": "saes_example", "managed": False},
                ),
            ],
        ),
        migrations.RunPython(convert, migrations.RunPython.noop, elidable=False),
        migrations.RunSQL("DROP TABLE saes_example_old"),
    ]
