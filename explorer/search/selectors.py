"""Reads behind search: features whose top examples peak on given tokens, explanations nearest
a query in meaning (pgvector), and the explanations still to embed. Feature and vocabulary
reads are in explorer/saes/selectors.py. Importable without torch.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Sum

from explorer.saes.models import SAE
from explorer.search.models import ExplanationEmbedding

# ---- features by peak token ---------------------------------------------------------------------


def features_peaking_on(
    *, token_ids: list[int], sae_ids: list[int] | None, limit: int
) -> list[tuple[int, int, float]]:
    """(feature id, number of top examples, strongest of them) for features whose top examples
    peak on one of `token_ids`, most such examples first.

    Each SAE's examples partition indexes (peak_token, feature_index) over its top examples
    (explorer/saes/example_copy.py `partition_index_sql`).
    """
    if not token_ids:
        return []
    sql = [
        "SELECT f.id, p.n, p.peak FROM (SELECT e.sae_id, e.feature_index, count(*) AS n,",
        "max(e.max_value) AS peak FROM saes_example e WHERE e.bin = -1 AND e.peak_token = ANY(%s)",
    ]
    params: list[Any] = [token_ids]
    if sae_ids is not None:
        sql.append("AND e.sae_id = ANY(%s)")
        params.append(sae_ids)
    sql.append(
        "GROUP BY e.sae_id, e.feature_index ORDER BY n DESC, peak DESC LIMIT %s) p "
        'JOIN saes_feature f ON f.sae_id = p.sae_id AND f."index" = p.feature_index '
        "ORDER BY p.n DESC, p.peak DESC"
    )
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
SEMANTIC_SETTINGS_SQL = (
    "SELECT set_config('hnsw.ef_search', %(ef)s, true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('random_page_cost', '1.1', true)"
)
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


def semantic_neighbours(
    *, vector: list[float], sae_ids: list[int] | None, limit: int, min_similarity: float
) -> list[tuple]:
    """Explanations nearest `vector` by cosine similarity (at least `min_similarity`), nearest
    first, as (feature id, sae id, index, density, max_activation, text, score, distance) rows;
    several explanations of one feature may each appear. `sae_ids` None searches every SAE.
    Through the HNSW index, so approximate (a true neighbour may be missed), except for a
    scope of at most EXACT_SCAN_MAX_FEATURES features, which is searched exactly.
    """
    sql = SEMANTIC_SQL.replace(
        "{scope}", "WHERE f.sae_id = ANY(%(sae_ids)s)" if sae_ids is not None else ""
    )
    if sae_ids is not None and _features_in(sae_ids) <= EXACT_SCAN_MAX_FEATURES:
        # `+ 0` hides the order from the HNSW index: the planner reads the scope's rows
        # through the feature and explanation indexes and sorts them (exact).
        sql = sql.replace(
            "ORDER BY e.embedding <=> %(q)s::halfvec",
            "ORDER BY (e.embedding <=> %(q)s::halfvec) + 0",
        )
    params = {
        "q": vector_literal(vector),
        "k": limit,
        "sae_ids": sae_ids,
        "max_distance": 1.0 - min_similarity,
        "ef": str(max(HNSW_EF_SEARCH, limit)),
    }
    # set_config(..., true) lasts until the end of the transaction: the settings stay with this
    # query.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(SEMANTIC_SETTINGS_SQL, params)
        cur.execute(sql, params)
        return cur.fetchall()


def embeddings_exist() -> bool:
    """Whether any explanation has an embedding (one index probe): without any, a search need
    not ask a worker for the query's embedding."""
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
    join, scope = (
        ("JOIN saes_feature f ON f.id = x.feature_id", "AND f.sae_id = %(sae_id)s")
        if sae_id
        else ("", "")
    )
    with connection.cursor() as cur:
        cur.execute(
            TO_EMBED_SQL.replace("{join}", join).replace("{scope}", scope),
            {"limit": limit, "sae_id": sae_id},
        )
        return cur.fetchall()


def database_clock() -> Any:
    """The database server's clock now (not the transaction's start): what a sweep notes before
    it looks for explanations to embed, to compare with the backlog's marks."""
    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        return cur.fetchone()[0]
