"""A synthetic indexed SAE at production scale, written fast with binary COPY (psycopg 3).

    python -m tests.bench._synthetic_db DATABASE_URL \
        [--features 250000] [--examples 25] [--context 64]

The database must be migrated and hold no model with slug `bench`. It gets one LanguageModel
(`bench`, a 50,257-token synthetic vocab), one SAE (`bench/res`) with `features` features
(all statistics, logits, neighbours, map coordinates, a 20-bin histogram), one explanation per
feature (4 to 8 words from a 2,000-word vocabulary, so trigram search has realistic hit
counts) and `examples` examples per feature over shared windows of `context` tokens (3/5 top,
2/5 quantile samples; each feature's top examples peak on its own token), in the compact
layout of explorer/saes/example_copy.py.

Speed: examples are built as numpy record arrays in PostgreSQL's binary COPY layout, so Python
never touches a single token; secondary indexes are dropped for the load and rebuilt after
(one sort each instead of millions of random inserts). Importable: `generate(url, ...)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from explorer.saes.example_copy import (
    EXAMPLE_COLUMNS,
    EXAMPLE_TABLE,
    WINDOW_COLUMNS,
    WINDOW_TABLE,
    ExampleArrays,
    WindowArrays,
    WindowIndex,
    column_list,
    example_copy_rows,
    partition_create_sql,
    partition_index_sql,
    partition_name,
    window_copy_chunks,
)

MODEL_SLUG = "bench"
SAE_SLUG = "res"
VOCAB_SIZE = 50_257
EXPLANATION_WORDS = 2_000
CHUNK_FEATURES = 2_000  # features per COPY batch of examples (~40 MB of COPY data)
TABLES = ("saes_feature", "saes_indexwindow", "explanations_explanation")

SYLLABLES = [
    "ba",
    "ko",
    "ri",
    "na",
    "te",
    "lu",
    "mo",
    "si",
    "da",
    "pe",
    "gra",
    "vin",
    "tor",
    "el",
    "us",
    "an",
    "qui",
    "ze",
    "fo",
    "lim",
    "ca",
    "ner",
    "ot",
    "wa",
    "hy",
    "dro",
    "pha",
    "st",
    "ex",
    "or",
]


@dataclass
class Report:
    features: int
    examples: int
    explanations: int
    database_mb: float
    seconds: float
    phases: dict[str, float]


def word(i: int, rng_base: int = len(SYLLABLES)) -> str:
    """A pronounceable pseudo-word for i (distinct for distinct i)."""
    parts = []
    i += rng_base  # at least two syllables
    while i:
        i, r = divmod(i, rng_base)
        parts.append(SYLLABLES[r])
    return "".join(parts)


def synthetic_vocab(n: int = VOCAB_SIZE) -> list[str]:
    """GPT-2-like: most tokens are word-initial (" word"), some are word pieces or punctuation."""
    specials = [
        "<|endoftext|>",
        "\n",
        "\n\n",
        " ",
        ".",
        ",",
        "!",
        "?",
        "'s",
        " the",
        " a",
        " of",
        " and",
        " to",
    ]
    out = list(specials)
    i = 0
    while len(out) < n:
        out.append(("" if i % 4 == 3 else " ") + word(i))
        i += 1
    return out


def _index_defs(conn, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every index of `table` but its primary key and unique
    constraints (those must hold during the load)."""
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [table],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def window_pool(*, n_windows: int, context: int, rng: np.random.Generator) -> WindowArrays:
    """The index run's context windows: random tokens, shared by every example."""
    return WindowArrays(
        number=np.arange(n_windows),
        token_ids=rng.integers(0, VOCAB_SIZE, size=(n_windows, context), dtype=np.int32),
        lengths=np.full(n_windows, context),
        document=rng.integers(0, 10_000_000, size=n_windows),
        offset=rng.integers(0, 2048, size=n_windows),
    )


def example_chunk(
    *,
    first: int,
    maxes: np.ndarray,
    slots: np.ndarray,
    n_top: int,
    n_quantile: int,
    context: int,
    n_windows: int,
    rng: np.random.Generator,
) -> ExampleArrays:
    """The examples of features first..first+len(maxes)-1: n_top top examples each, at the
    (window, position) `slots` (one per top example, where its feature's peak token was
    written), then n_quantile quantile samples in random windows. Each example has its
    maximum and up to 6 weaker activations around."""
    f = len(maxes)
    feature = np.concatenate(
        [np.repeat(np.arange(f), n_top), np.repeat(np.arange(f), n_quantile)]
    )  # [n]
    n_t = f * n_top
    rank = np.tile(np.arange(n_top), f)
    top_values = maxes[feature[:n_t]] * (1 - rank / (n_top + 1))
    bins = 5
    qi = np.tile(np.arange(n_quantile) % bins, f)
    mx = maxes[feature[n_t:]]
    low, high = mx * qi / bins, mx * (qi + 1) / bins
    q_values = low + (high - low) * rng.random(len(qi))
    n = len(feature)
    window = np.concatenate([slots[:, 0], rng.integers(0, n_windows, n - n_t)])
    pos = np.concatenate([slots[:, 1], rng.integers(0, context, n - n_t)])
    max_value = np.concatenate([top_values, q_values]).astype(np.float32)
    values = np.zeros((n, context), np.float32)  # [n, ctx]
    spill = rng.integers(0, context, size=(n, 6))
    values[np.arange(n)[:, None], spill] = rng.random((n, 6)) * max_value[:, None] * 0.5
    values[np.arange(n), pos] = max_value
    values = values.astype(np.float16)
    rows, cols = np.nonzero(values)
    return ExampleArrays(
        feature_index=first + feature,
        kind=np.concatenate([np.zeros(n_t, np.int64), np.ones(n - n_t, np.int64)]),
        quantile_index=np.concatenate([np.zeros(n_t, np.int64), qi]),
        quantile_low=np.zeros(n),
        quantile_high=np.zeros(n),
        window=window,
        max_value=max_value,
        max_position=pos,
        nz_offsets=np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]),
        nz_positions=cols,
        nz_values=values[rows, cols],
    )


def _array(name: str, elem: str, n: int) -> list[tuple]:
    """Fields of a 1-d array column of `n` non-null elements in binary COPY layout."""
    return [
        (f"{name}_len", ">i4"),
        (f"{name}_hdr", ">i4", (5,)),
        (name, [("len", ">i4"), ("v", elem)], (n,)),
    ]


ELEMENT_OIDS = {">f8": 701, ">i8": 20, ">i4": 23}


def _set_array(rec: np.ndarray, name: str, values: np.ndarray) -> None:
    elem = rec.dtype[name].base["v"]
    n = rec.dtype[name].shape[0]
    rec[f"{name}_len"] = 20 + n * (4 + elem.itemsize)
    rec[f"{name}_hdr"] = (
        1,
        0,
        ELEMENT_OIDS[elem.str],
        n,
        1,
    )  # ndim, has nulls, element type, dim, lbound
    rec[name]["len"] = elem.itemsize
    rec[name]["v"] = values


def feature_block(*, sae_id: int, n: int, maxes: np.ndarray, rng: np.random.Generator) -> bytes:
    """Binary COPY rows (no header) of `n` features: the columns listed in generate()."""
    dtype = np.dtype(
        [
            ("n", ">i2"),
            ("sae_len", ">i4"),
            ("sae", ">i8"),
            ("index_len", ">i4"),
            ("index", ">i4"),
            ("density_len", ">i4"),
            ("density", ">f8"),
            ("max_len", ">i4"),
            ("max", ">f8"),
            ("mean_len", ">i4"),
            ("mean", ">f8"),
            *_array("hist_edges", ">f8", 21),
            *_array("hist_counts", ">i8", 20),
            *_array("q_bounds", ">f8", 6),
            *_array("q_fractions", ">f8", 5),
            *_array("top_ids", ">i4", 10),
            *_array("top_values", ">f8", 10),
            *_array("bottom_ids", ">i4", 10),
            *_array("bottom_values", ">f8", 10),
            *_array("neighbours", ">i4", 10),
            *_array("cosines", ">f8", 10),
            ("dead_len", ">i4"),
            ("dead", "u1"),
        ]
    )
    rec = np.zeros(n, dtype=dtype)
    rec["n"] = 16
    for name, size in (
        ("sae", 8),
        ("index", 4),
        ("density", 8),
        ("max", 8),
        ("mean", 8),
        ("dead", 1),
    ):
        rec[f"{name}_len"] = size
    rec["sae"], rec["index"] = sae_id, np.arange(n)
    rec["density"] = 10 ** rng.uniform(-6, -1, n)
    rec["max"], rec["mean"] = maxes, maxes / 3
    _set_array(rec, "hist_edges", maxes[:, None] * np.linspace(0, 1, 21)[None, :])
    _set_array(rec, "hist_counts", -np.sort(-rng.integers(1, 10_000, (n, 20)), axis=1))
    _set_array(rec, "q_bounds", maxes[:, None] * np.linspace(0, 1, 6)[None, :])
    _set_array(rec, "q_fractions", np.tile([0.5, 0.25, 0.15, 0.07, 0.03], (n, 1)))
    _set_array(rec, "top_ids", rng.integers(0, VOCAB_SIZE, (n, 10)))
    _set_array(rec, "top_values", -np.sort(-2 * rng.random((n, 10)), axis=1))
    _set_array(rec, "bottom_ids", rng.integers(0, VOCAB_SIZE, (n, 10)))
    _set_array(rec, "bottom_values", np.sort(-2 * rng.random((n, 10)), axis=1))
    _set_array(rec, "neighbours", rng.integers(0, n, (n, 10)))
    _set_array(rec, "cosines", -np.sort(-rng.random((n, 10)), axis=1))
    return rec.tobytes()


def map_points(*, n: int, rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """`n` map points spread over the unit disc (the SAEMap row of the synthetic SAE)."""
    angle, radius = rng.random(n) * 2 * np.pi, np.sqrt(rng.random(n))
    return (radius * np.cos(angle)).tolist(), (radius * np.sin(angle)).tolist()


def _examples_load(
    conn,
    *,
    sae_id: int,
    run_id: int,
    features: int,
    peaks: np.ndarray,
    maxes: np.ndarray,
    n_top: int,
    n_quantile: int,
    context: int,
    rng: np.random.Generator,
    log,
) -> str:
    """Windows and examples of the SAE, loaded and attached as its partition (returned)."""
    examples = n_top + n_quantile
    # Windows are shared, as an index run's are: each holds up to half its length of top
    # examples' peaks, at distinct positions (slots); the slot's token becomes the peak token.
    per_window = max(1, context // 2)
    n_windows = max(1, -(-features * n_top // per_window))
    windows = window_pool(n_windows=n_windows, context=context, rng=rng)
    positions = rng.permuted(np.tile(np.arange(context), (n_windows, 1)), axis=1)[:, :per_window]
    slots = np.stack(
        [np.repeat(np.arange(n_windows), per_window), positions.ravel()], axis=1
    )  # [n_windows * per_window, 2]
    slots = slots[rng.permutation(len(slots))[: features * n_top]]
    windows.token_ids[slots[:, 0], slots[:, 1]] = np.repeat(peaks, n_top)
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY {WINDOW_TABLE} ({column_list(WINDOW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            for chunk in window_copy_chunks(windows, run_id):
                copy.write(chunk)
        cur.execute(f"SELECT number, id FROM {WINDOW_TABLE} WHERE run_id = %s", [run_id])
        index = WindowIndex.of(windows, dict(cur.fetchall()))
        for sql in partition_create_sql(sae_id, run_id):
            cur.execute(sql)
        table = partition_name(sae_id, run_id)
        with cur.copy(
            f"COPY {table} ({column_list(EXAMPLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(BINARY_HEADER)
            for start in range(0, features, CHUNK_FEATURES):
                end = min(start + CHUNK_FEATURES, features)
                chunk = example_chunk(
                    first=start,
                    maxes=maxes[start:end],
                    slots=slots[start * n_top : end * n_top],
                    n_top=n_top,
                    n_quantile=n_quantile,
                    context=context,
                    n_windows=n_windows,
                    rng=rng,
                )
                copy.write(example_copy_rows(chunk, sae_id, index))
                if (start // CHUNK_FEATURES) % 10 == 0:
                    log(f"examples: {end * examples:,} rows")
            copy.write(BINARY_TRAILER)
        for sql in partition_index_sql(sae_id, run_id):
            cur.execute(sql)
        cur.execute(
            f"ALTER TABLE {EXAMPLE_TABLE} ATTACH PARTITION {table} FOR VALUES IN ({sae_id})"
        )
    return table


BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
BINARY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def generate(
    url: str,
    *,
    features: int = 250_000,
    examples: int = 25,
    context: int = 64,
    seed: int = 0,
    log=None,
) -> Report:
    """Write the synthetic SAE into the migrated database at `url`; returns counts and size."""
    import psycopg

    log = log or (lambda msg: None)
    rng = np.random.default_rng(seed)
    n_top = round(examples * 3 / 5)
    n_quantile = examples - n_top
    phases: dict[str, float] = {}
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        model_id = conn.execute(
            "INSERT INTO saes_languagemodel (slug, source, architecture, d_model, n_layers, n_ctx,"
            " vocab, revision, created)"
            " VALUES (%s, %s, 'gpt2', 768, 12, 1024, %s, '', now()) RETURNING id",
            [MODEL_SLUG, "synthetic-bench", synthetic_vocab()],
        ).fetchone()[0]
        sae_id = conn.execute(
            "INSERT INTO saes_sae (model_id, slug, source, hook_name, layer, d_in, d_sae,"
            " architecture, preprocessing, provenance, created)"
            " VALUES (%s, %s, 'synthetic', 'blocks.8.hook_resid_pre', 8, 768,"
            " %s, 'topk', '{}', '{}', now()) RETURNING id",
            [model_id, SAE_SLUG, features],
        ).fetchone()[0]
        dropped = {t: _index_defs(conn, t) for t in TABLES}
        for defs in dropped.values():
            for name, _ in defs:
                conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        maxes = (1 + 30 * rng.random(features)).round(3)
        peaks = rng.integers(14, VOCAB_SIZE, features)

        t = time.monotonic()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY saes_feature (sae_id, index, density, max_activation, mean_activation,"
                " hist_edges, hist_counts, quantile_bounds, quantile_fractions,"
                " top_logit_ids, top_logit_values, bottom_logit_ids, bottom_logit_values,"
                " neighbour_indices, neighbour_cosines, dead)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.write(BINARY_HEADER)
            copy.write(feature_block(sae_id=sae_id, n=features, maxes=maxes, rng=rng))
            copy.write(BINARY_TRAILER)
        xs, ys = map_points(n=features, rng=rng)
        conn.execute(
            "INSERT INTO saes_saemap (sae_id, xs, ys, computed) VALUES (%s, %s, %s, now())",
            [sae_id, xs, ys],
        )
        conn.commit()
        phases["features"] = time.monotonic() - t
        log(f"features: {features} in {phases['features']:.1f}s")

        ids = np.array(
            [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM saes_feature WHERE sae_id = %s ORDER BY index", [sae_id]
                )
            ],
            dtype=np.int64,
        )

        t = time.monotonic()
        words = [word(i) for i in range(EXPLANATION_WORDS)]
        n_words = rng.integers(4, 9, features)
        picks = rng.integers(0, EXPLANATION_WORDS, (features, 8))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY explanations_explanation"
                " (feature_id, text, method, score, score_method, created) FROM STDIN"
            ) as copy,
        ):
            for i in range(features):
                text = " ".join(words[w] for w in picks[i, : n_words[i]])
                copy.write_row(
                    (
                        int(ids[i]),
                        text,
                        "offline",
                        round(float(rng.random()), 3),
                        "synthetic",
                        "now",
                    )
                )
        conn.commit()
        phases["explanations"] = time.monotonic() - t
        log(f"explanations: {features} in {phases['explanations']:.1f}s")

        t = time.monotonic()
        run_id = conn.execute(
            "INSERT INTO saes_indexrun (sae_id, corpus, tokens, shards, options, status,"
            " tokens_done, tokens_total, timings, error, created, finished)"
            " VALUES (%s, 'synthetic', 0, 1, '{}', 'done', 0, 0, '{}', '', now(), now())"
            " RETURNING id",
            [sae_id],
        ).fetchone()[0]
        table = _examples_load(
            conn,
            sae_id=sae_id,
            run_id=run_id,
            features=features,
            peaks=peaks,
            maxes=maxes,
            n_top=n_top,
            n_quantile=n_quantile,
            context=context,
            rng=rng,
            log=lambda m: log(f"{m}, {time.monotonic() - t:.0f}s"),
        )
        conn.commit()
        phases["examples"] = time.monotonic() - t

        t = time.monotonic()
        for defs in dropped.values():
            for name, definition in defs:
                log(f"index {name}")
                conn.execute(definition)
                conn.commit()
        phases["indexes"] = time.monotonic() - t

        t = time.monotonic()
        conn.autocommit = True
        for table in TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")  # visibility map: index-only scans
        phases["vacuum"] = time.monotonic() - t
        conn.execute(f"VACUUM (ANALYZE) {table}")
        n_examples = conn.execute(
            "SELECT count(*) FROM saes_example WHERE sae_id = %s", [sae_id]
        ).fetchone()[0]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return Report(
        features=features,
        examples=int(n_examples),
        explanations=features,
        database_mb=round(size / 2**20, 1),
        seconds=round(time.monotonic() - started, 1),
        phases={k: round(v, 1) for k, v in phases.items()},
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--features", type=int, default=250_000)
    parser.add_argument("--examples", type=int, default=25)
    parser.add_argument("--context", type=int, default=64)
    args = parser.parse_args(argv)
    report = generate(
        args.database_url,
        features=args.features,
        examples=args.examples,
        context=args.context,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
