"""Reads for models and SAEs, their features and index runs, and the models' vocabularies.
Importable without torch.

Sized for SAEs of millions of features: no query here scans or counts a whole SAE, pages of
features are keyset-paginated (never OFFSET), and a model's vocab (tens of thousands of
strings) is read once per process into the one cache below, not per request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import F, Model, Q, QuerySet

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.core.rows import Columns, Part
from explorer.explanations import selectors as explanation_selectors
from explorer.saes.example_copy import nz_unpack
from explorer.saes.models import (
    SAE,
    Example,
    Feature,
    IndexRun,
    IndexShard,
    LanguageModel,
    SAEEvaluation,
    SAEMap,
)

# -- models and SAEs ---------------------------------------------------------------------------


def language_model_list() -> QuerySet[LanguageModel]:
    """All models, without their (large) vocab column."""
    return LanguageModel.objects.defer("vocab")


def sae_list(*, model_slug: str | None = None) -> QuerySet[SAE]:
    qs = SAE.objects.select_related("model").defer("model__vocab")
    if model_slug is not None:
        qs = qs.filter(model__slug=model_slug)
    return qs


def sae_get(*, model_slug: str, slug: str) -> SAE:
    """The SAE `slug` of model `model_slug`. Raises NotFound."""
    try:
        return sae_list(model_slug=model_slug).get(slug=slug)
    except SAE.DoesNotExist:
        raise NotFound(f"No SAE {model_slug}/{slug}.") from None


def sae_find(*, model_source: str, sae_source: str) -> SAE | None:
    """The SAE registered from these stored sources, if any."""
    return sae_list().filter(model__source=model_source, source=sae_source).first()


def sae_by_id(*, sae_id: int) -> SAE | None:
    """SAE `sae_id` with its model (vocab left out); None when it is gone."""
    return sae_list().filter(pk=sae_id).first()


# -- vocabulary --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocab:
    """A model's token strings: `strings[i]` is token id i decoded on its own."""

    strings: list[str]

    def token(self, token_id: int) -> str:
        """Token `token_id`'s string; `<id>` for an id outside the vocab."""
        return self.strings[token_id] if 0 <= token_id < len(self.strings) else f"<{token_id}>"

    def tokens(self, ids: Iterable[int]) -> list[str]:
        strings, n = self.strings, len(self.strings)
        return [strings[i] if 0 <= i < n else f"<{i}>" for i in ids]

    @functools.cached_property
    def ids_by_string(self) -> dict[str, list[int]]:
        """The ids of each string (a vocab may spell two tokens the same), built on first use."""
        ids: dict[str, list[int]] = {}
        for i, s in enumerate(self.strings):
            ids.setdefault(s, []).append(i)
        return ids

    @functools.cached_property
    def json_strings(self) -> list[str]:
        """Each token as a JSON string literal, encoded once (exports write millions)."""
        return [json.dumps(s, ensure_ascii=False) for s in self.strings]

    def tokens_json(self, ids: Iterable[int]) -> str:
        """json.dumps(self.tokens(ids), ensure_ascii=False), without encoding each token again."""
        table, n = self.json_strings, len(self.strings)
        ids = list(ids)
        if ids and 0 <= min(ids) and max(ids) < n:  # always, for stored examples: a lookup each
            return "[" + ", ".join(map(table.__getitem__, ids)) + "]"
        return "[" + ", ".join(table[i] if 0 <= i < n else json.dumps(f"<{i}>") for i in ids) + "]"


VOCAB_CACHE_SIZE = 4  # models per process; a 256k-token vocab is a few MB (more once indexed)
_vocab_lock = threading.Lock()
_vocab_cache: OrderedDict[tuple[int, datetime], Vocab] = OrderedDict()


def vocab_get(*, model: LanguageModel) -> Vocab:
    """The model's token strings, read from the database once per process (the few most
    recently used models are kept).

    Keyed by (pk, created): a model's vocab never changes after registration, and a model
    deleted and registered again gets a new key.
    """
    key = (model.pk, model.created)
    with _vocab_lock:
        vocab = _vocab_cache.get(key)
        if vocab is not None:
            _vocab_cache.move_to_end(key)
            return vocab
    strings = LanguageModel.objects.values_list("vocab", flat=True).get(pk=model.pk)
    vocab = Vocab(strings=list(strings))
    with _vocab_lock:
        vocab = _vocab_cache.setdefault(key, vocab)
        _vocab_cache.move_to_end(key)
        while len(_vocab_cache) > VOCAB_CACHE_SIZE:
            _vocab_cache.popitem(last=False)
    return vocab


def token_strings(*, model_id: int, ids: list[int]) -> list[str]:
    """Each token id decoded on its own, from model `model_id`'s stored vocab; ids outside the
    vocab give "". One query that reads only these entries of the vocab column, not the whole
    vocab: for a few hundred tokens (a steering result) on a process that may never need the
    rest."""
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(v, '') FROM unnest(%s::int[]) WITH ORDINALITY AS t(i, ord) "
            "LEFT JOIN LATERAL (SELECT m.vocab[t.i + 1] AS v FROM saes_languagemodel m "
            "WHERE m.id = %s) AS x ON true ORDER BY t.ord",
            [list(ids), model_id],
        )
        return [row[0] for row in cursor.fetchall()]


# -- one feature -------------------------------------------------------------------------------


def sae_url(*, model_slug: str, sae_slug: str) -> str:
    """The page of an SAE."""
    return f"/{model_slug}/{sae_slug}/"


def feature_url(*, model_slug: str, sae_slug: str, index: int) -> str:
    """The permalink of a feature page."""
    return f"/{model_slug}/{sae_slug}/{index}/"


def feature_get(*, sae: SAE, index: int) -> Feature:
    """Feature `index` of `sae`. Raises NotFound, saying the SAE's index range for an index it
    does not have, or that it is not indexed yet."""
    try:
        if not 0 <= index < sae.d_sae:
            raise Feature.DoesNotExist
        return Feature.objects.get(sae=sae, index=index)
    except Feature.DoesNotExist:
        if 0 <= index < sae.d_sae and not Feature.objects.filter(sae=sae).exists():
            raise NotFound(
                f"{sae.model.slug}/{sae.slug} has not been indexed yet: its features appear "
                "when an index run finishes (`manage.py index_sae`)."
            ) from None
        raise NotFound(
            f"{sae.model.slug}/{sae.slug} has no feature {index}: its features are "
            f"numbered 0 to {sae.d_sae - 1}."
        ) from None


# A feature with its SAE, model (vocab left out) and newest finished index run's options, in one
# hand-written query: on the feature page's and feature JSON's path the ORM spent longer
# compiling this join than PostgreSQL spends answering it.
_FEATURE_PARTS = (
    Part(Feature, "f"),
    Part(SAE, "s"),
    Part(LanguageModel, "m", leave_out=("vocab",)),
)


@functools.cache
def _feature_query(one_to_one: type[Model] | None) -> tuple[Columns, str]:
    parts = _FEATURE_PARTS + ((Part(one_to_one, "o"),) if one_to_one else ())
    columns = Columns(*parts)
    join = f"LEFT JOIN {one_to_one._meta.db_table} o ON o.feature_id = f.id" if one_to_one else ""
    sql = f"""
SELECT {columns.sql},
       (SELECT r.options FROM {IndexRun._meta.db_table} r
        WHERE r.sae_id = s.id AND r.status = %(done)s
        ORDER BY r.finished DESC NULLS LAST, r.id DESC LIMIT 1)
FROM {Feature._meta.db_table} f
JOIN {SAE._meta.db_table} s ON s.id = f.sae_id
JOIN {LanguageModel._meta.db_table} m ON m.id = s.model_id
{join}
WHERE m.slug = %(model)s AND s.slug = %(sae)s AND f."index" = %(index)s
"""
    return columns, sql


def feature_with_sae(
    *, model_slug: str, sae_slug: str, index: int, one_to_one: type[Model] | None = None
) -> Feature:
    """Feature `index` of `model_slug/sae_slug` with its SAE and model (vocab left out) loaded
    and `run_options` set (the options of the SAE's newest finished index run, ordered as
    _NEWEST_FIRST orders them; None before one), in one query. `one_to_one`, a
    model with a one-to-one `feature` field, is loaded too, as select_related loads it (None
    cached when the feature has no row). Raises NotFound as feature_by_slugs does."""
    columns, sql = _feature_query(one_to_one)
    row = None
    if 0 <= index < 2**31:
        with connection.cursor() as cur:
            params = {"model": model_slug, "sae": sae_slug, "index": index}
            cur.execute(sql, {**params, "done": IndexRun.Status.DONE.value})
            row = cur.fetchone()
    if row is None:
        feature_by_slugs(model_slug=model_slug, sae_slug=sae_slug, index=index)  # says why
        raise NotFound(f"No feature {model_slug}/{sae_slug}/{index}.")  # not reached
    feature, sae, model, *other = columns.instances(row)
    sae.model = model
    feature.sae = sae
    if one_to_one is not None:
        one_to_one._meta.get_field("feature").remote_field.set_cached_value(feature, other[0])
    options = row[columns.width]
    feature.run_options = json.loads(options) if isinstance(options, str) else options
    return feature


def feature_by_slugs(*, model_slug: str, sae_slug: str, index: int) -> Feature:
    """Feature `index` of the SAE `model_slug/sae_slug`. Raises NotFound as sae_get and
    feature_get do."""
    return feature_get(sae=sae_get(model_slug=model_slug, slug=sae_slug), index=index)


def feature_detail(*, model_slug: str, sae_slug: str, index: int) -> dict:
    """Everything about one feature but its examples (the Feature JSON contract). Raises
    NotFound."""
    f = feature_with_sae(model_slug=model_slug, sae_slug=sae_slug, index=index)
    sae = f.sae
    vocab = vocab_get(model=sae.model)
    map_x, map_y = feature_map_point(sae=sae, index=f.index)

    def logits(ids: list[int], values: list[float]) -> list[dict]:
        return [
            {"token_id": t, "token": vocab.token(t), "value": v}
            for t, v in zip(ids, values, strict=False)
        ]

    return {
        "model": sae.model.slug,
        "sae": sae.slug,
        "index": f.index,
        "density": f.density,
        "max_activation": f.max_activation,
        "mean_activation": f.mean_activation,
        "dead": f.dead,
        "hist_edges": f.hist_edges,
        "hist_counts": f.hist_counts,
        "top_logits": logits(f.top_logit_ids, f.top_logit_values),
        "bottom_logits": logits(f.bottom_logit_ids, f.bottom_logit_values),
        "neighbours": [
            {"index": i, "cosine": c}
            for i, c in zip(f.neighbour_indices, f.neighbour_cosines, strict=False)
        ],
        "map_x": map_x,
        "map_y": map_y,
        "explanations": explanation_selectors.explanation_dicts(feature_id=f.pk),
        "url": feature_url(model_slug=sae.model.slug, sae_slug=sae.slug, index=f.index),
    }


def neighbour_list(*, sae: SAE, index: int) -> list[dict]:
    """A feature's decoder-cosine neighbours with their stats and best explanations."""
    f = feature_get(sae=sae, index=index)
    cosine = dict(zip(f.neighbour_indices, f.neighbour_cosines, strict=False))
    rows = {
        r.index: r
        for r in Feature.objects.filter(sae=sae, index__in=list(cosine)).only(*SUMMARY_FIELDS)
    }
    best = explanation_selectors.best_explanations(feature_ids=[r.pk for r in rows.values()])
    out = []
    for i in f.neighbour_indices:
        row = rows.get(i)
        out.append(
            {
                "index": i,
                "cosine": cosine[i],
                "density": row.density if row else None,
                "max_activation": row.max_activation if row else None,
                "explanation": best[row.pk].text if row and row.pk in best else None,
                "url": feature_url(model_slug=sae.model.slug, sae_slug=sae.slug, index=i),
            }
        )
    return out


@dataclass
class StoredExample:
    """One stored example decoded: its window's tokens and its dense per-token values."""

    feature_index: int
    kind: str  # "top" or "quantile"
    quantile_index: int | None  # quantile bin k (0 = lowest); None for a top example
    quantile_low: float | None  # the bin's bounds [low, high) (Feature.quantile_bounds)
    quantile_high: float | None
    token_ids: list[int]
    values: list[float]  # one per token (float16 precision), 0 where the feature is off
    max_value: float
    max_position: int  # index into token_ids
    document: int  # document number in the index run's corpus stream
    offset: int  # that document's token offset of the window's first token after BOS


_EXAMPLE_SQL = """
SELECT {distinct} e.feature_index, e.bin, e.max_value::float8, e.max_position, e.nz,
       w.token_ids, w.document, w."offset",
       CASE WHEN e.bin >= 0 THEN f.quantile_bounds[e.bin + 1] END,
       CASE WHEN e.bin >= 0 THEN f.quantile_bounds[e.bin + 2] END
FROM saes_example e
JOIN saes_indexwindow w ON w.id = e.window_id
JOIN saes_feature f ON f.sae_id = e.sae_id AND f."index" = e.feature_index
WHERE e.sae_id = %s AND e.feature_index = ANY(%s) {where}
ORDER BY e.feature_index, e.bin = -1 DESC, e.bin DESC, e.max_value DESC, e.window_id
"""


def stored_examples(
    *,
    sae_id: int,
    feature_indices: Sequence[int],
    kind: str | None = None,
    strongest_only: bool = False,
    min_value: float | None = None,
) -> list[StoredExample]:
    """The stored examples of features `feature_indices` of SAE `sae_id`, decoded, by feature
    index: top examples first (strongest first), then quantile bins from the highest down
    (strongest first within a bin). One query: examples, windows and bin bounds are read in
    one snapshot, so a re-index committing meanwhile never mixes old and new.

    `kind` keeps one kind ("top" or "quantile"); `strongest_only` keeps each feature's first
    example only; `min_value` keeps examples whose maximum exceeds it. Raises
    ApplicationError (invalid_kind) for another kind.
    """
    where = []
    params: list = [int(sae_id), [int(i) for i in feature_indices]]
    if kind is not None:
        if kind not in Example.Kind.values:
            raise ApplicationError(
                f"Unknown example kind {kind!r}: use top or quantile.", code="invalid_kind"
            )
        where.append("AND e.bin = -1" if kind == Example.Kind.TOP else "AND e.bin >= 0")
    if min_value is not None:
        where.append("AND e.max_value > %s")
        params.append(float(min_value))
    if not params[1]:
        return []
    sql = _EXAMPLE_SQL.format(
        distinct="DISTINCT ON (e.feature_index)" if strongest_only else "", where=" ".join(where)
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    out = []
    for index, b, max_value, max_position, nz, ids, document, offset, low, high in rows:
        out.append(
            StoredExample(
                feature_index=index,
                kind=Example.Kind.TOP if b < 0 else Example.Kind.QUANTILE,
                quantile_index=None if b < 0 else b,
                quantile_low=low,
                quantile_high=high,
                token_ids=ids,
                values=nz_unpack(nz, len(ids)).tolist(),
                max_value=max_value,
                max_position=max_position,
                document=document,
                offset=offset,
            )
        )
    return out


def example_dict(example: StoredExample, vocab: Vocab) -> dict:
    return {
        "kind": example.kind,
        "quantile_index": example.quantile_index,
        "quantile_low": example.quantile_low,
        "quantile_high": example.quantile_high,
        "token_ids": example.token_ids,
        "tokens": vocab.tokens(example.token_ids),
        "values": example.values,
        "max_value": example.max_value,
        "max_position": example.max_position,
        "document": example.document,
        "offset": example.offset,
    }


def example_list(*, sae: SAE, index: int, kind: str | None = None) -> list[dict]:
    """A feature's examples, top ones first (strongest first), then quantile bins from the
    highest down, with token strings and unpacked values."""
    f = feature_get(sae=sae, index=index)
    rows = stored_examples(sae_id=sae.pk, feature_indices=[f.index], kind=kind)
    vocab = vocab_get(model=sae.model)
    return [example_dict(e, vocab) for e in rows]


def storage_bytes(*, sae: SAE) -> dict[str, int]:
    """On-disk bytes of an SAE's examples, windows and features, with TOAST and indexes.

    The examples partition is the SAE's alone; the windows and features tables are shared, so
    each counts its whole size (dead rows included) times the SAE's share of its live rows.
    """
    from explorer.saes.indexing import example_partitions

    with connection.cursor() as cur:
        examples = 0
        for name in example_partitions(cur, sae.pk):
            cur.execute("SELECT pg_total_relation_size(%s::regclass)", [name])
            examples += cur.fetchone()[0]
        cur.execute(
            "SELECT pg_total_relation_size('saes_indexwindow'), count(*), "
            "count(*) FILTER (WHERE run_id IN (SELECT id FROM saes_indexrun WHERE sae_id = %s)) "
            "FROM saes_indexwindow",
            [sae.pk],
        )
        w_size, w_all, w_own = cur.fetchone()
        cur.execute(
            "SELECT pg_total_relation_size('saes_feature'), count(*), "
            "count(*) FILTER (WHERE sae_id = %s) FROM saes_feature",
            [sae.pk],
        )
        f_size, f_all, f_own = cur.fetchone()
        cur.execute("SELECT count(*) FROM saes_example WHERE sae_id = %s", [sae.pk])
        n_examples = cur.fetchone()[0]
    windows = w_size * w_own // w_all if w_all else 0
    features = f_size * f_own // f_all if f_all else 0
    return {
        "examples": examples,
        "windows": windows,
        "features": features,
        "total": examples + windows + features,
        "n_examples": n_examples,
    }


# -- many features ------------------------------------------------------------------------------

# Sort keys of feature pages: field name, descending? Every one has an index on (sae, field).
SORTS: dict[str, tuple[str, bool]] = {
    "index": ("index", False),
    "-index": ("index", True),
    "density": ("density", False),
    "-density": ("density", True),
    "max_activation": ("max_activation", False),
    "-max_activation": ("max_activation", True),
}
MAX_PAGE = 200

# The columns a feature list or search result needs (not histograms, logits, neighbours).
SUMMARY_FIELDS = ("id", "sae_id", "index", "density", "max_activation", "mean_activation", "dead")


def encode_cursor(value: float, index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, index]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """Raises ApplicationError (invalid_cursor) for anything encode_cursor did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, index = json.loads(raw)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)  # json.loads takes NaN and Infinity
            or not isinstance(index, int)
        ):
            raise TypeError
        return value, index
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApplicationError(
            "That page cursor is not valid; start again from the first page.", code="invalid_cursor"
        ) from None


@dataclass
class FeaturePage:
    items: list[dict]
    next_cursor: str | None


def feature_page(
    *,
    sae: SAE,
    sort: str = "index",
    cursor: str | None = None,
    limit: int = 50,
    include_dead: bool = True,
) -> FeaturePage:
    """One page of `sae`'s features in `sort` order, after `cursor` (None = first page).

    Keyset pagination: the cursor holds the last row's (sort value, index), so a page deep
    in a million-feature table costs the same as the first (an index range scan; no OFFSET).
    Ties on the sort value are broken by index, in the same direction. Each item carries the
    feature's best explanation. Raises ApplicationError for an unknown sort or bad cursor.
    """
    if sort not in SORTS:
        raise ApplicationError(
            f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.", code="invalid_sort"
        )
    limit = max(1, min(limit, MAX_PAGE))
    field, desc = SORTS[sort]
    qs: QuerySet[Feature] = Feature.objects.filter(sae=sae).only(*SUMMARY_FIELDS)
    if not include_dead:
        qs = qs.filter(dead=False)
    if cursor:
        value, index = decode_cursor(cursor)
        if field == "index":
            qs = qs.filter(index__lt=index) if desc else qs.filter(index__gt=index)
        elif desc:
            # `field <= value` is the index range; the OR only drops the ties already shown.
            qs = qs.filter(
                Q(**{f"{field}__lte": value}), Q(**{f"{field}__lt": value}) | Q(index__lt=index)
            )
        else:
            qs = qs.filter(
                Q(**{f"{field}__gte": value}), Q(**{f"{field}__gt": value}) | Q(index__gt=index)
            )
    order = [f"-{field}", "-index"] if desc else [field, "index"]
    if field == "index":
        order = order[:1]
    rows = list(qs.order_by(*order)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    items = feature_summaries(sae=sae, rows=rows)
    next_cursor = encode_cursor(getattr(rows[-1], field), rows[-1].index) if more and rows else None
    return FeaturePage(items=items, next_cursor=next_cursor)


def feature_summaries(*, sae: SAE, rows: list[Feature]) -> list[dict]:
    """Table rows for features of one SAE, each with its best explanation (one query)."""
    best = explanation_selectors.best_explanations(feature_ids=[r.pk for r in rows])
    m, s = sae.model.slug, sae.slug
    return [
        {
            "model": m,
            "sae": s,
            "index": r.index,
            "density": r.density,
            "max_activation": r.max_activation,
            "mean_activation": r.mean_activation,
            "dead": r.dead,
            "explanation": best[r.pk].text if r.pk in best else None,
            "url": feature_url(model_slug=m, sae_slug=s, index=r.index),
        }
        for r in rows
    ]


def feature_ids(*, sae: SAE, indices: Iterable[int]) -> dict[int, int]:
    """{index: feature id} of the features among `indices` that `sae` has indexed."""
    return dict(Feature.objects.filter(sae=sae, index__in=list(indices)).values_list("index", "pk"))


def features_by_sae(*, feature_ids: Sequence[int]) -> list[tuple[SAE, list[int]]]:
    """The SAEs (with their models, vocab left out) of the features `feature_ids`, each with the
    ids of its features among them; features that are gone are left out."""
    groups: dict[int, tuple[SAE, list[int]]] = {}
    rows = (
        Feature.objects.filter(pk__in=list(feature_ids))
        .select_related("sae__model")
        .defer("sae__model__vocab")
        .order_by("sae_id", "index")
    )
    for f in rows:
        groups.setdefault(f.sae_id, (f.sae, []))[1].append(f.pk)
    return list(groups.values())


# Finished runs, newest first (a run stored without a finish time, as tests write, goes last).
_NEWEST_FIRST = (F("finished").desc(nulls_last=True), "-pk")


# The weight facts of each kind, as feature columns, under the names workers/index.py uses.
WEIGHT_FACT_COLUMNS = {
    "logits": {
        "top_ids": "top_logit_ids",
        "top_vals": "top_logit_values",
        "bottom_ids": "bottom_logit_ids",
        "bottom_vals": "bottom_logit_values",
    },
    "neighbours": {"nb_idx": "neighbour_indices", "nb_cos": "neighbour_cosines"},
}


def weight_facts_stored(*, sae: SAE, keys: dict[str, str]) -> dict[str, list]:
    """The weight facts the SAE's feature rows hold, for each kind whose key (a digest of what
    it was computed from, in the run's options) equals the newest finished run's: {name: one
    list per feature, by index}. Empty when none match or the rows do not cover every index."""
    run = (
        IndexRun.objects.filter(sae=sae, status=IndexRun.Status.DONE)
        .order_by(*_NEWEST_FIRST)
        .only("options")
        .first()
    )
    stored = (run.options.get("facts_keys") or {}) if run else {}
    names = {
        name: column
        for kind, key in keys.items()
        if stored.get(kind) == key
        for name, column in WEIGHT_FACT_COLUMNS[kind].items()
    }
    if not names:
        return {}
    rows = list(
        Feature.objects.filter(sae=sae).order_by("index").values_list("index", *names.values())
    )
    if [r[0] for r in rows] != list(range(sae.d_sae)):
        return {}
    return {name: [r[i] for r in rows] for i, name in enumerate(names, start=1)}


def options_exclude_bos(options: dict | None) -> bool:
    """Whether a run with these options left out a BOS token at position 0 of every window."""
    return bool(options and options.get("prepend_bos") and not options.get("include_bos"))


def bos_excluded(*, sae: SAE) -> bool:
    """Whether position 0 of the SAE's stored example windows is a BOS token left out of every
    statistic: its newest finished index run prepended BOS and did not include it."""
    run = (
        IndexRun.objects.filter(sae=sae, status=IndexRun.Status.DONE)
        .order_by(*_NEWEST_FIRST)
        .only("options")
        .first()
    )
    return options_exclude_bos(run.options if run else None)


def feature_map_point(*, sae: SAE, index: int) -> tuple[float | None, float | None]:
    """Feature `index`'s point on the SAE's map; (None, None) before the map is laid out."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT xs[%s], ys[%s] FROM saes_saemap WHERE sae_id = %s",
            [index + 1, index + 1, sae.pk],
        )
        row = cur.fetchone()
    return (row[0], row[1]) if row else (None, None)


def feature_map_points(*, sae: SAE) -> dict[str, list]:
    """Columnar data of every feature: index, x, y (null before the map is laid out), density,
    dead. The SAE page draws the map and the SAE's density distribution from it."""
    rows = Feature.objects.filter(sae=sae).order_by("index").values_list("index", "density", "dead")
    stored = SAEMap.objects.filter(sae=sae).values_list("xs", "ys").first()
    xs, ys = stored if stored else ([], [])
    cols: dict[str, list] = {"index": [], "x": [], "y": [], "density": [], "dead": []}
    for index, density, dead in rows.iterator(chunk_size=5000):
        laid_out = index < len(xs) and index < len(ys)
        cols["index"].append(index)
        cols["x"].append(round(xs[index], 4) if laid_out else None)
        cols["y"].append(round(ys[index], 4) if laid_out else None)
        cols["density"].append(float(f"{density:.3g}"))
        cols["dead"].append(1 if dead else 0)
    return cols


def random_live_index(*, sae: SAE, rng: random.Random | None = None) -> int | None:
    """A live feature's index, close to uniform: the first live one at or after a random index."""
    rng = rng or random.Random()
    probe = rng.randrange(max(1, sae.d_sae))
    live = (
        Feature.objects.filter(sae=sae, dead=False)
        .order_by("index")
        .values_list("index", flat=True)
    )
    found = live.filter(index__gte=probe).first()
    return found if found is not None else live.first()


# -- index runs ----------------------------------------------------------------------------------

FINISHED = (IndexRun.Status.DONE, IndexRun.Status.FAILED, IndexRun.Status.CANCELLED)


def index_run_active(*, sae: SAE) -> IndexRun | None:
    """The SAE's newest queued or running index run, if any."""
    return (
        IndexRun.objects.filter(
            sae=sae, status__in=[IndexRun.Status.QUEUED, IndexRun.Status.RUNNING]
        )
        .order_by("-created")
        .first()
    )


def index_run_latest(*, sae: SAE) -> IndexRun | None:
    return IndexRun.objects.filter(sae=sae).order_by("-created").first()


def index_run_unfinished(*, run_id: int) -> IndexRun | None:
    """Run `run_id` with its SAE and model, unless it is gone or finished (done, failed or
    cancelled): what a merge step may still store."""
    return (
        IndexRun.objects.select_related("sae__model")
        .defer("sae__model__vocab")
        .filter(pk=run_id)
        .exclude(status__in=FINISHED)
        .first()
    )


def index_shard_list(*, run: IndexRun) -> list[IndexShard]:
    """The run's shards by index, with their stored results."""
    return list(IndexShard.objects.filter(run=run).order_by("index"))


# -- evaluations ---------------------------------------------------------------------------------


def evaluation_latest(*, sae: SAE, done: bool = False) -> SAEEvaluation | None:
    """The SAE's newest evaluation (of any status, or only a finished one with ``done``)."""
    qs = SAEEvaluation.objects.filter(sae=sae)
    if done:
        qs = qs.filter(status=SAEEvaluation.Status.DONE)
    return qs.order_by("-created").first()


def evaluations_done_by_sae(*, sae_ids: Iterable[int]) -> dict[int, SAEEvaluation]:
    """The newest finished evaluation of each SAE that has one, by SAE id (one query)."""
    rows = (
        SAEEvaluation.objects.filter(sae_id__in=list(sae_ids), status=SAEEvaluation.Status.DONE)
        .order_by("sae_id", "-created")
        .distinct("sae_id")
    )
    return {e.sae_id: e for e in rows}
