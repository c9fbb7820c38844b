"""Reads of features for the JSON API, search and exports: one feature with its stats, sorted
pages of an SAE's features (keyset-paginated), examples with token strings, and the vocab.

Sized for SAEs of millions of features: no query here scans or counts a whole SAE, and a
model's vocab (tens of thousands of strings) is read once per process, not per request.
Importable without torch.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet, Sum

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.explanations import selectors as explanation_selectors
from explorer.saes.models import SAE, Example, Feature, LanguageModel

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


def feature_url(*, model_slug: str, sae_slug: str, index: int) -> str:
    """The permalink of a feature page."""
    return f"/{model_slug}/{sae_slug}/{index}/"


# ---- vocabulary ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vocab:
    strings: list[str]
    ids_by_string: dict[str, list[int]]

    def token(self, token_id: int) -> str:
        return self.strings[token_id] if 0 <= token_id < len(self.strings) else f"<{token_id}>"

    def tokens(self, ids: Iterable[int]) -> list[str]:
        strings, n = self.strings, len(self.strings)
        return [strings[i] if 0 <= i < n else f"<{i}>" for i in ids]

    @functools.cached_property
    def json_strings(self) -> list[str]:
        """Each token as a JSON string literal, encoded once (exports write millions)."""
        return [json.dumps(s, ensure_ascii=False) for s in self.strings]

    def tokens_json(self, ids: Iterable[int]) -> str:
        """json.dumps(self.tokens(ids), ensure_ascii=False), without encoding each token again."""
        table, n = self.json_strings, len(self.strings)
        return "[" + ", ".join(table[i] if 0 <= i < n else json.dumps(f"<{i}>") for i in ids) + "]"


_vocab_cache: dict[tuple[int, Any], Vocab] = {}
_vocab_lock = threading.Lock()


def vocab_get(*, model: LanguageModel) -> Vocab:
    """The model's token strings, loaded once per process.

    Keyed by (pk, created): a model's vocab never changes after registration, and a model
    deleted and registered again gets a new key.
    """
    key = (model.pk, model.created)
    vocab = _vocab_cache.get(key)
    if vocab is None:
        with _vocab_lock:
            vocab = _vocab_cache.get(key)
            if vocab is None:
                strings = LanguageModel.objects.values_list("vocab", flat=True).get(pk=model.pk)
                ids: dict[str, list[int]] = {}
                for i, s in enumerate(strings):
                    ids.setdefault(s, []).append(i)
                vocab = Vocab(strings=list(strings), ids_by_string=ids)
                _vocab_cache[key] = vocab
    return vocab


# ---- one feature ------------------------------------------------------------------------------

def feature_get(*, sae: SAE, index: int) -> Feature:
    """Feature `index` of `sae`. Raises NotFound, naming the valid range when out of it."""
    if not 0 <= index < sae.d_sae:
        raise NotFound(f"{sae.model.slug}/{sae.slug} has features 0 to {sae.d_sae - 1}; there is no feature {index}.")
    try:
        return Feature.objects.get(sae=sae, index=index)
    except Feature.DoesNotExist:
        raise NotFound(f"Feature {index} of {sae.model.slug}/{sae.slug} is not indexed yet.") from None


def explanation_dicts(*, feature_id: int) -> list[dict]:
    return [{"id": e.id, "text": e.text, "method": e.method, "score": e.score,
             "author": e.author.get_username() if e.author else None, "votes": e.vote_total}
            for e in explanation_selectors.explanation_list(feature_id=feature_id)]


def feature_detail(*, sae: SAE, index: int) -> dict:
    """Everything about one feature but its examples (the Feature JSON contract)."""
    f = feature_get(sae=sae, index=index)
    vocab = vocab_get(model=sae.model)

    def logits(ids: list[int], values: list[float]) -> list[dict]:
        return [{"token_id": t, "token": vocab.token(t), "value": v} for t, v in zip(ids, values, strict=False)]

    return {
        "model": sae.model.slug, "sae": sae.slug, "index": f.index,
        "density": f.density, "max_activation": f.max_activation, "mean_activation": f.mean_activation,
        "dead": f.dead, "hist_edges": f.hist_edges, "hist_counts": f.hist_counts,
        "top_logits": logits(f.top_logit_ids, f.top_logit_values),
        "bottom_logits": logits(f.bottom_logit_ids, f.bottom_logit_values),
        "neighbours": [{"index": i, "cosine": c}
                       for i, c in zip(f.neighbour_indices, f.neighbour_cosines, strict=False)],
        "map_x": f.map_x, "map_y": f.map_y,
        "explanations": explanation_dicts(feature_id=f.pk),
        "url": feature_url(model_slug=sae.model.slug, sae_slug=sae.slug, index=f.index),
    }


def neighbour_list(*, sae: SAE, index: int) -> list[dict]:
    """A feature's decoder-cosine neighbours with their stats and best explanations."""
    f = feature_get(sae=sae, index=index)
    cosine = dict(zip(f.neighbour_indices, f.neighbour_cosines, strict=False))
    rows = {r.index: r for r in Feature.objects.filter(sae=sae, index__in=list(cosine)).only(*SUMMARY_FIELDS)}
    best = explanation_selectors.best_explanations(feature_ids=[r.pk for r in rows.values()])
    out = []
    for i in f.neighbour_indices:
        row = rows.get(i)
        out.append({"index": i, "cosine": cosine[i],
                    "density": row.density if row else None,
                    "max_activation": row.max_activation if row else None,
                    "explanation": best[row.pk].text if row and row.pk in best else None,
                    "url": feature_url(model_slug=sae.model.slug, sae_slug=sae.slug, index=i)})
    return out


def example_dict(example: Example, vocab: Vocab) -> dict:
    return {
        "kind": example.kind, "quantile_index": example.quantile_index,
        "quantile_low": example.quantile_low, "quantile_high": example.quantile_high,
        "token_ids": example.token_ids, "tokens": vocab.tokens(example.token_ids),
        "values": Example.unpack_values(example.values),
        "max_value": example.max_value, "max_position": example.max_position,
        "document": example.document, "offset": example.offset,
    }


def example_list(*, sae: SAE, index: int, kind: str | None = None) -> list[dict]:
    """A feature's examples, top ones first (strongest first), then quantile bins from the
    highest down, with token strings and unpacked values."""
    f = feature_get(sae=sae, index=index)
    qs = Example.objects.filter(feature=f)
    if kind is not None:
        if kind not in Example.Kind.values:
            raise ApplicationError(f"Unknown example kind {kind!r}: use top or quantile.", code="invalid_kind")
        qs = qs.filter(kind=kind)
    vocab = vocab_get(model=sae.model)
    rows = sorted(qs, key=lambda e: (e.kind != "top", -(e.quantile_index or 0), -e.max_value))
    return [example_dict(e, vocab) for e in rows]


# ---- pages of features (keyset) ---------------------------------------------------------------

def encode_cursor(value: float, index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, index]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """Raises ApplicationError (invalid_cursor) for anything encode_cursor did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, index = json.loads(raw)
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(index, int):
            raise TypeError
        return value, index
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApplicationError("That page cursor is not valid; start again from the first page.",
                               code="invalid_cursor") from None


@dataclass
class FeaturePage:
    items: list[dict]
    next_cursor: str | None


def feature_page(*, sae: SAE, sort: str = "index", cursor: str | None = None, limit: int = 50,
                 include_dead: bool = True) -> FeaturePage:
    """One page of `sae`'s features in `sort` order, after `cursor` (None = first page).

    Keyset pagination: the cursor holds the last row's (sort value, index), so a page deep
    in a million-feature table costs the same as the first (an index range scan; no OFFSET).
    Ties on the sort value are broken by index, in the same direction. Each item carries the
    feature's best explanation. Raises ApplicationError for an unknown sort or bad cursor.
    """
    if sort not in SORTS:
        raise ApplicationError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.", code="invalid_sort")
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
            qs = qs.filter(Q(**{f"{field}__lte": value}), Q(**{f"{field}__lt": value}) | Q(index__lt=index))
        else:
            qs = qs.filter(Q(**{f"{field}__gte": value}), Q(**{f"{field}__gt": value}) | Q(index__gt=index))
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
    return [{"model": m, "sae": s, "index": r.index, "density": r.density,
             "max_activation": r.max_activation, "mean_activation": r.mean_activation, "dead": r.dead,
             "explanation": best[r.pk].text if r.pk in best else None,
             "url": feature_url(model_slug=m, sae_slug=s, index=r.index)} for r in rows]


# ---- features by peak token ---------------------------------------------------------------------

# Must match the expression of the index search_example_peak_token (migration 0001) exactly.
PEAK_TOKEN_SQL = "(e.token_ids[e.max_position + 1])"


def features_peaking_on(*, token_ids: list[int], sae_ids: list[int] | None, limit: int) -> list[tuple[int, int, float]]:
    """(feature id, number of top examples, strongest of them) for features whose top examples
    peak on one of `token_ids`, most such examples first."""
    from django.db import connection

    if not token_ids:
        return []
    sql = ["SELECT e.feature_id, count(*) AS n, max(e.max_value) AS peak FROM saes_example e"]
    params: list[Any] = []
    if sae_ids is not None:
        sql.append("JOIN saes_feature f ON f.id = e.feature_id AND f.sae_id = ANY(%s)")
        params.append(sae_ids)
    sql.append(f"WHERE e.kind = 'top' AND {PEAK_TOKEN_SQL} = ANY(%s)")
    params.append(token_ids)
    sql.append("GROUP BY e.feature_id ORDER BY n DESC, peak DESC LIMIT %s")
    params.append(limit)
    with connection.cursor() as cur:
        cur.execute(" ".join(sql), params)
        return [(int(a), int(b), float(c)) for a, b, c in cur.fetchall()]


# ---- semantic search (explanation embeddings) ----------------------------------------------------

def vector_literal(vector: list[float]) -> str:
    """A vector as pgvector's text form, for a `%s::halfvec` (or ::vector) parameter."""
    return "[" + ",".join(format(float(v), ".7g") for v in vector) + "]"


# hnsw.ef_search: candidates the HNSW scan keeps (pgvector's default is 40); 100 gives recall
# near 0.99 for top-20 at a fraction of a millisecond more. iterative_scan lets a scoped query
# (one SAE among many) keep scanning the graph until it has `limit` rows that pass the filter,
# instead of filtering the first ef_search and returning too few (pgvector >= 0.8).
# random_page_cost 1.1 (SSD or cached pages; the default 4 models spinning disks): otherwise,
# for a small scope, the planner reads every explanation sequentially (~40 ms at 250k) rather
# than the scope's few thousand through their indexes (~7 ms).
SEMANTIC_SETTINGS_SQL = ("SELECT set_config('hnsw.ef_search', %(ef)s, true), "
                         "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                         "set_config('random_page_cost', '1.1', true)")
HNSW_EF_SEARCH = 100

SEMANTIC_SQL = """
SELECT * FROM (
  SELECT f.id, f.sae_id, f.index, f.density, f.max_activation, x.text, x.score,
         e.embedding <=> %(q)s::halfvec AS distance
  FROM search_explanationembedding e
  JOIN explanations_explanation x ON x.id = e.explanation_id
  JOIN saes_feature f ON f.id = x.feature_id
  {scope}
  ORDER BY e.embedding <=> %(q)s::halfvec
  LIMIT %(k)s) nearest
WHERE distance <= %(max_distance)s
ORDER BY distance
"""


# A scope of at most this many features (one small SAE beside big ones) is searched exactly:
# reading its few thousand vectors costs less than walking the HNSW graph of every SAE until
# enough of its rows turn up (pgvector's iterative scan), and misses none.
EXACT_SCAN_MAX_FEATURES = 10_000


def _features_in(sae_ids: list[int]) -> int:
    return SAE.objects.filter(pk__in=sae_ids).aggregate(n=Sum("d_sae"))["n"] or 0


def semantic_neighbours(*, vector: list[float], sae_ids: list[int] | None, limit: int,
                        min_similarity: float) -> list[tuple]:
    """Explanations nearest `vector` by cosine similarity (at least `min_similarity`), nearest
    first, as (feature id, sae id, index, density, max_activation, text, score, distance) rows;
    several explanations of one feature may each appear. `sae_ids` None searches every SAE.
    Through the HNSW index, so approximate (a true neighbour may be missed), except for a
    scope of at most EXACT_SCAN_MAX_FEATURES features, which is searched exactly.
    """
    from django.db import connection, transaction

    sql = SEMANTIC_SQL.replace("{scope}", "WHERE f.sae_id = ANY(%(sae_ids)s)" if sae_ids is not None else "")
    if sae_ids is not None and _features_in(sae_ids) <= EXACT_SCAN_MAX_FEATURES:
        # `+ 0` hides the order from the HNSW index: the planner reads the scope's rows
        # through the feature and explanation indexes and sorts them (exact).
        sql = sql.replace("ORDER BY e.embedding <=> %(q)s::halfvec", "ORDER BY (e.embedding <=> %(q)s::halfvec) + 0")
    params = {"q": vector_literal(vector), "k": limit, "sae_ids": sae_ids, "max_distance": 1.0 - min_similarity,
              "ef": str(max(HNSW_EF_SEARCH, limit))}
    # set_config(..., true) lasts until the end of the transaction: the settings stay with this query.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(SEMANTIC_SETTINGS_SQL, params)
        cur.execute(sql, params)
        return cur.fetchall()


def embeddings_exist() -> bool:
    """Whether any explanation has an embedding (one index probe): without any, a search need
    not ask a worker for the query's embedding."""
    from explorer.search.models import ExplanationEmbedding

    return ExplanationEmbedding.objects.exists()


TO_EMBED_SQL = """
SELECT x.id, x.text FROM explanations_explanation x
LEFT JOIN search_explanationembedding e ON e.explanation_id = x.id
{join}
WHERE (e.explanation_id IS NULL OR e.text_md5 <> md5(x.text)) {scope}
ORDER BY x.id LIMIT %(limit)s
"""


def explanations_to_embed(*, sae_id: int | None, limit: int) -> list[tuple[int, str]]:
    """(id, text) of up to `limit` explanations (of SAE `sae_id`, or of all) with no embedding
    or one computed from an older text."""
    from django.db import connection

    join, scope = ("JOIN saes_feature f ON f.id = x.feature_id", "AND f.sae_id = %(sae_id)s") if sae_id else ("", "")
    with connection.cursor() as cur:
        cur.execute(TO_EMBED_SQL.replace("{join}", join).replace("{scope}", scope),
                    {"limit": limit, "sae_id": sae_id})
        return cur.fetchall()
