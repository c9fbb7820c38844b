"""Streamed exports of an SAE's features and examples as CSV or JSON.

Memory stays flat whatever the SAE's size: rows come from COPY ... TO STDOUT (features as
CSV) or from a server-side cursor inside one read-only transaction (a plain DECLARE, not
Django's WITH HOLD cursor, which PostgreSQL would materialise in full before the first row), a
few thousand at a time, and each batch is written out before the next is fetched. The
generators are async, on an async psycopg connection of their own, so under ASGI the response
streams without a thread per download (Django would buffer a sync iterator in full under ASGI).

Who may export, and how much (`export_admit`, `export_limited`): accounts only unless
EXPORTS_OPEN; per client EXPORT_CONCURRENCY at once and EXPORT_RATE_LIMIT per
EXPORT_RATE_WINDOW_S, EXPORT_MAX_RUNNING at once over everyone (explorer/core/limits.py). The
slots are held while the stream runs and released in its `finally`, also when the client goes
away. Formatting rows is CPU work in the web process: the stream formats SLICE_ROWS rows at a
time, rests after each and steps aside for the other requests in flight (`_rendered`), so the
pages served beside an export wait for a slice, not for the export.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import math
import struct
import time
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection

from explorer.core import busy
from explorer.core.exceptions import ApplicationError
from explorer.core.limits import Concurrency, Rate, Slot
from explorer.saes.example_copy import nz_unpack
from explorer.saes.models import SAE, WEIGHT_FACT_FIELDS
from explorer.saes.selectors import Vocab

CHUNK_ROWS = 2000
# COPY hands over one row per message; they are sent on in chunks of about this size (one
# write per row costs the server a send per row, and a compressed stream a flush per row).
COPY_CHUNK_BYTES = 64 * 1024

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
# The map's points (saes_saemap: one array per axis) as rows, joined once: subscripting the
# arrays per feature would read the whole array again for every row.
_MAP_JOIN = """LEFT JOIN (SELECT u.i - 1 AS i, u.x, u.y FROM saes_saemap m,
        unnest(m.xs, m.ys) WITH ORDINALITY AS u(x, y, i) WHERE m.sae_id = {sae}) p
    ON p.i = f.index"""
FEATURE_CSV_SQL = f"""
COPY (SELECT f.index, f.density, f.max_activation, f.mean_activation, f.dead::text AS dead,
             p.x AS map_x, p.y AS map_y,
             {_BEST_EXPLANATION} AS explanation,
             {", ".join(f"array_to_json(f.{c}) AS {c}" for c in FEATURE_COLUMNS[8:])}
      FROM saes_feature f {_MAP_JOIN.format(sae="{sae_id:d}")}
      WHERE f.sae_id = {{sae_id:d}} ORDER BY f.index)
TO STDOUT WITH (FORMAT csv, HEADER)
"""
_MAP_COLUMNS = {"map_x": "p.x", "map_y": "p.y"}
FEATURE_JSON_SQL = f"""
SELECT json_build_object({
    ", ".join(f"'{c}', {_MAP_COLUMNS.get(c, f'f.{c}')}" for c in _FEATURE_OWN_COLUMNS)
},
                         'explanation', {_BEST_EXPLANATION})::text
FROM saes_feature f {_MAP_JOIN.format(sae="%s")} WHERE f.sae_id = %s ORDER BY f.index
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
SELECT e.feature_index, e.bin,
       CASE WHEN e.bin >= 0 THEN f.quantile_bounds[e.bin + 1] END,
       CASE WHEN e.bin >= 0 THEN f.quantile_bounds[e.bin + 2] END,
       e.max_value, e.max_position, w.document, w."offset", w.token_ids, e.nz
FROM saes_example e
JOIN saes_indexwindow w ON w.id = e.window_id
JOIN saes_feature f ON f.sae_id = e.sae_id AND f."index" = e.feature_index
WHERE e.sae_id = %s
ORDER BY e.feature_index, e.bin = -1 DESC, e.bin DESC, e.max_value DESC, e.window_id
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
            chunk = bytearray()
            async for data in copy:
                chunk += data
                if len(chunk) >= COPY_CHUNK_BYTES:
                    yield bytes(chunk)
                    chunk.clear()
            if chunk:
                yield bytes(chunk)


@functools.cache
def _float16_json() -> list[str]:
    """Every float16 bit pattern as its JSON text (65,536 strings, built once): a lookup per
    value instead of a format() call, in the export's hottest loop."""
    values = struct.unpack("<65536e", array("H", range(65536)).tobytes())
    # float16 holds ~3 significant digits: 4 keep every value exact to that precision, and the
    # export small (repr would print 0.1500244140625).
    return [format(v, ".4g") if math.isfinite(v) else "null" for v in values]


def _values_json(nz: bytes, length: int) -> str:
    """An example's stored sparse values, densified over its `length` tokens, as a JSON array
    (NaN and infinities as null)."""
    bits = nz_unpack(nz, length).astype(np.float16).view(np.uint16).tolist()
    return "[" + ", ".join(map(_float16_json().__getitem__, bits)) + "]"


def _kind(b: int) -> tuple[str, int | None]:
    """(kind, quantile index) of a stored bin (-1: top)."""
    return ("top", None) if b < 0 else ("quantile", b)


def _example_json(row: tuple, vocab: Vocab) -> str:
    """One example as a JSON object; the lists are written directly (millions of rows)."""
    (index, b, q_low, q_high, max_value, max_pos, document, offset, ids, nz) = row
    kind, q_index = _kind(b)
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
        f' "values": {_values_json(nz, len(ids))}}}'
    )


def _example_csv(row: tuple, vocab: Vocab) -> list:
    (index, b, q_low, q_high, max_value, max_pos, document, offset, ids, nz) = row
    kind, q_index = _kind(b)
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
        _values_json(nz, len(ids)),
    ]


# Formatting is CPU work in the web process that serves pages. Rows are formatted SLICE_ROWS at
# a time; after each slice the stream rests REST × the time it worked (an export takes at most
# half the process), then steps aside while another request is in flight (explorer/core/busy.py),
# at most STEP_ASIDE_S per slice: a page served beside an export waits for one slice at most.
SLICE_ROWS = 100
REST = 1.0
STEP_ASIDE_S = 0.5


async def _rendered(
    sql: str, params: list[Any], render: Callable[[list[tuple]], str]
) -> AsyncIterator[str]:
    """`render` of the rows of `sql`, SLICE_ROWS at a time, pausing after each (see above)."""
    with busy.bulk():
        async for batch in _rows(sql, params):
            for start in range(0, len(batch), SLICE_ROWS):
                began = time.perf_counter()
                text = render(batch[start : start + SLICE_ROWS])
                worked = time.perf_counter() - began
                yield text
                await asyncio.sleep(worked * REST)
                await busy.step_aside(at_most_s=STEP_ASIDE_S)


async def _examples(
    sql: str, params: list[Any], vocab: Vocab, fmt: str, head: dict
) -> AsyncIterator[bytes]:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)

        def render(rows: list[tuple]) -> str:
            buf.seek(0)
            buf.truncate()
            writer.writerows(_example_csv(row, vocab) for row in rows)
            return buf.getvalue()

        yield _csv_head().encode()
        async for text in _rendered(sql, params, render):
            yield text.encode()
        return
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "items": [').encode()
    first = True
    async for text in _rendered(
        sql, params, lambda rows: ",\n".join(_example_json(row, vocab) for row in rows)
    ):
        yield (text if first else ",\n" + text).encode()
        first = False
    yield b"]}\n"


def _csv_head() -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(EXAMPLE_COLUMNS)
    return buf.getvalue()


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
    return _json_lines(FEATURE_JSON_SQL, [sae.pk, sae.pk], head)


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


# --------------------------------------------------------------------------- who may export


def _rate() -> Rate:
    return Rate(
        name="export",
        limit=settings.EXPORT_RATE_LIMIT,
        window_s=settings.EXPORT_RATE_WINDOW_S,
        what="exports",
    )


def _concurrency() -> tuple[Concurrency, Concurrency]:
    per_client = Concurrency(
        name="export",
        limit=settings.EXPORT_CONCURRENCY,
        what="exports",
        busy_message=(
            f"at most {settings.EXPORT_CONCURRENCY} of your exports may run at once; "
            "try again when one has finished"
        ),
    )
    everyone = Concurrency(
        name="export-all",
        limit=settings.EXPORT_MAX_RUNNING,
        what="exports",
        busy_message=(
            f"the server is running {settings.EXPORT_MAX_RUNNING} exports already; "
            "try again in a minute"
        ),
        retry_after_s=60,
    )
    return per_client, everyone


def export_admit(*, user: Any, client: str) -> list[Slot]:
    """The slots of one export by `user` (counted as `client`), to hand to `export_limited`.

    Raises ApplicationError (401, code "authentication_required") for an anonymous user
    unless EXPORTS_OPEN, and RateLimited (429) when the client has EXPORT_CONCURRENCY exports
    running (code "too_many_at_once"), everyone EXPORT_MAX_RUNNING, or the client has started
    EXPORT_RATE_LIMIT in this window (code "rate_limited"). A refused export counts nothing.
    """
    if not settings.EXPORTS_OPEN and not getattr(user, "is_authenticated", False):
        raise ApplicationError(
            "Exports need an account: sign in or send an API key (Authorization: Bearer <key>).",
            code="authentication_required",
            status=401,
        )
    per_client, everyone = _concurrency()
    slots: list[Slot] = []
    try:
        slots.append(per_client.acquire(client=client))
        slots.append(everyone.acquire(client="*"))
        _rate().hit(client=client)
    except BaseException:
        for slot in slots:
            slot.release()
        raise
    return slots


async def export_limited(
    stream: AsyncGenerator[bytes, None], slots: list[Slot]
) -> AsyncIterator[bytes]:
    """`stream`, keeping `slots` alive while it runs and releasing them when it ends, fails
    or is closed (the client went away)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        async for chunk in stream:
            yield chunk
            for slot in slots:
                await slot.arefresh(client)
    finally:
        try:
            await asyncio.shield(_release(slots, client))
        finally:
            await stream.aclose()  # its database connection, now rather than at collection
            await client.aclose()


async def _release(slots: list[Slot], client: Any) -> None:
    for slot in slots:
        await slot.arelease(client)
