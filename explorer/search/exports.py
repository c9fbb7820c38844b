"""Streamed exports of an SAE's features and examples as CSV or JSON.

Memory stays flat whatever the SAE's size: rows come from COPY ... TO STDOUT (features as
CSV) or from a server-side cursor inside one read-only transaction (a plain DECLARE, not
Django's WITH HOLD cursor, which PostgreSQL would materialise in full before the first row), a
few thousand at a time, and each batch is written out before the next is fetched. The
generators are async, on an async psycopg connection of their own, so under ASGI the response
streams without a thread per download (Django would buffer a sync iterator in full under ASGI).
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

from django.db import connection

from explorer.saes.models import SAE, WEIGHT_FACT_FIELDS
from explorer.saes.selectors import Vocab

CHUNK_ROWS = 2000

FEATURE_COLUMNS = [
    "index",
    "density",
    "max_activation",
    "mean_activation",
    "dead",
    "map_x",
    "map_y",
    "explanation",
    *WEIGHT_FACT_FIELDS,
    "hist_edges",
    "hist_counts",
]
# Features carry no token strings, so PostgreSQL writes them out itself: CSV through COPY (list
# columns as JSON arrays, one cell each) and JSON one object per row; Python only passes bytes on.
_FEATURE_OWN_COLUMNS = [c for c in FEATURE_COLUMNS if c != "explanation"]
_BEST_EXPLANATION = """(SELECT x.text FROM explanations_explanation x WHERE x.feature_id = f.id
        ORDER BY x.score DESC NULLS LAST, x.created DESC, x.id DESC LIMIT 1)"""
FEATURE_CSV_SQL = f"""
COPY (SELECT f.index, f.density, f.max_activation, f.mean_activation, f.dead::text AS dead,
             f.map_x, f.map_y,
             {_BEST_EXPLANATION} AS explanation,
             {", ".join(f"array_to_json(f.{c}) AS {c}" for c in FEATURE_COLUMNS[8:])}
      FROM saes_feature f WHERE f.sae_id = {{sae_id:d}} ORDER BY f.index)
TO STDOUT WITH (FORMAT csv, HEADER)
"""
FEATURE_JSON_SQL = f"""
SELECT json_build_object({", ".join(f"'{c}', f.{c}" for c in _FEATURE_OWN_COLUMNS)},
                         'explanation', {_BEST_EXPLANATION})::text
FROM saes_feature f WHERE f.sae_id = %s ORDER BY f.index
"""

EXAMPLE_COLUMNS = [
    "feature",
    "kind",
    "quantile_index",
    "quantile_low",
    "quantile_high",
    "max_value",
    "max_position",
    "document",
    "offset",
    "token_ids",
    "tokens",
    "values",
]
EXAMPLE_SQL = """
SELECT f.index, e.kind, e.quantile_index, e.quantile_low, e.quantile_high, e.max_value,
       e.max_position, e.document, e."offset", e.token_ids, e.values
FROM saes_feature f JOIN saes_example e ON e.feature_id = f.id
WHERE f.sae_id = %s
ORDER BY f.index, e.kind DESC, e.quantile_index DESC NULLS FIRST, e.max_value DESC
"""


def _conninfo() -> str:
    from explorer.env import database_url_from_settings

    return database_url_from_settings(connection.settings_dict)


async def _rows(sql: str, params: list[Any]) -> AsyncIterator[list[tuple]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(_conninfo()) as conn:
        await conn.set_read_only(True)
        async with conn.transaction(), conn.cursor(name="export") as cur:
            cur.itersize = CHUNK_ROWS
            await cur.execute(sql, params)
            while batch := await cur.fetchmany(CHUNK_ROWS):
                yield batch


async def _copy_out(sql: str) -> AsyncIterator[bytes]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(_conninfo()) as conn:
        await conn.set_read_only(True)
        async with conn.cursor() as cur, cur.copy(sql) as copy:
            async for data in copy:
                yield bytes(data)


def _values_json(data: bytes) -> str:
    # float16 holds ~3 significant digits: 4 keep every value exact to that precision, and the
    # export small (repr would print 0.1500244140625).
    values = struct.unpack(f"<{len(data) // 2}e", data)
    return "[" + ", ".join(format(v, ".4g") if math.isfinite(v) else "null" for v in values) + "]"


def _example_json(row: tuple, vocab: Vocab) -> str:
    """One example as a JSON object; the lists are written directly (millions of rows)."""
    (index, kind, q_index, q_low, q_high, max_value, max_pos, document, offset, ids, values) = row
    head = json.dumps(
        {
            "feature": index,
            "kind": kind,
            "quantile_index": q_index,
            "quantile_low": q_low,
            "quantile_high": q_high,
            "max_value": max_value,
            "max_position": max_pos,
            "document": document,
            "offset": offset,
        }
    )
    return (
        f'{head[:-1]}, "token_ids": {json.dumps(ids)}, "tokens": {vocab.tokens_json(ids)},'
        f' "values": {_values_json(values)}}}'
    )


def _example_csv(row: tuple, vocab: Vocab) -> list:
    (index, kind, q_index, q_low, q_high, max_value, max_pos, document, offset, ids, values) = row
    # Lists go in one cell as JSON, so token strings with commas or quotes survive intact.
    return [
        index,
        kind,
        q_index,
        q_low,
        q_high,
        max_value,
        max_pos,
        document,
        offset,
        json.dumps(ids),
        vocab.tokens_json(ids),
        _values_json(values),
    ]


async def _examples(
    sql: str, params: list[Any], vocab: Vocab, fmt: str, head: dict
) -> AsyncIterator[bytes]:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXAMPLE_COLUMNS)
        yield buf.getvalue().encode()
        async for batch in _rows(sql, params):
            buf.seek(0)
            buf.truncate()
            writer.writerows(_example_csv(row, vocab) for row in batch)
            yield buf.getvalue().encode()
        return
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "items": [').encode()
    first = True
    async for batch in _rows(sql, params):
        text = ",\n".join(_example_json(row, vocab) for row in batch)
        yield (text if first else ",\n" + text).encode()
        first = False
    yield b"]}\n"


def feature_export(*, sae: SAE, fmt: str) -> AsyncIterator[bytes]:
    """Every feature of `sae` by index, with its best explanation (fmt "csv" or "json")."""
    if fmt == "csv":
        return _copy_out(FEATURE_CSV_SQL.format(sae_id=int(sae.pk)))
    head = {
        "model": sae.model.slug,
        "sae": sae.slug,
        "d_sae": sae.d_sae,
        "kind": "features",
        "url": f"/{sae.model.slug}/{sae.slug}/",
    }
    return _json_lines(FEATURE_JSON_SQL, [sae.pk], head)


async def _json_lines(sql: str, params: list[Any], head: dict) -> AsyncIterator[bytes]:
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "items": [').encode()
    first = True
    async for batch in _rows(sql, params):
        text = ",\n".join(row[0] for row in batch)
        yield (text if first else ",\n" + text).encode()
        first = False
    yield b"]}\n"


def example_export(*, sae: SAE, vocab: Vocab, fmt: str) -> AsyncIterator[bytes]:
    """Every example of `sae`'s features, by feature index, top examples first, with token
    strings and unpacked values (fmt "csv" or "json")."""
    head = {"model": sae.model.slug, "sae": sae.slug, "d_sae": sae.d_sae, "kind": "examples"}
    return _examples(EXAMPLE_SQL, [sae.pk], vocab, fmt, head)
