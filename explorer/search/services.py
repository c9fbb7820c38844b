"""Search: one service for the /search/ page and GET /api/v1/search.

Query forms, in the one search box:
    #1234        feature 1234 (of the given SAE, or of every SAE in scope)
    token:bank   features whose top examples peak on the token "bank" (or " bank")
    text:...     the features that fire most on that text (an activation test on a live
                 worker: explorer/activations), in the SAE in scope, or in every SAE of the
                 model in scope at once (one forward pass), listed per SAE
    anything     explanations matching it (full text with stemming and prefixes, then
                 pg_trgm word similarity for typos; best first), then features peaking
                 on it when it is one token
`mode` (auto|index|explanation|token|text) forces one kind instead of the prefixes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from explorer.activations import services as activations
from explorer.core import outages, tasks
from explorer.core.exceptions import ApplicationError, NotFound
from explorer.explanations import selectors as explanation_selectors
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE, Feature
from explorer.search import selectors
from explorer.search.models import EmbeddingBacklog

log = logging.getLogger(__name__)

MODES = ("auto", "index", "explanation", "token", "text")
MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
MIN_TRIGRAM_CHARS = 3  # shorter queries have no trigram to look up: no explanation search
INDEX_RE = re.compile(r"^#?\s*(\d{1,10})$")
SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")  # Django's slug path converter
PREFIX_RE = re.compile(r"^(token|text):\s?(.*)$", re.DOTALL)


@dataclass
class SearchHit:
    model: str
    sae: str
    index: int
    explanation: str | None
    density: float | None
    max_activation: float | None
    url: str
    match: str  # index | explanation | token | text
    activation: float | None = None  # text search: the feature's largest value on the text


@dataclass
class SearchGroup:
    """The hits of one SAE, with what a heading needs."""

    model: str
    sae: str
    hook_name: str
    url: str  # the SAE's page
    hits: list[SearchHit]


@dataclass
class SearchScope:
    saes: list[SAE]  # the SAEs searched; all of them when no model/SAE is given
    sae_ids: list[int] | None  # None: no filter (every SAE)


def _scope(*, model_slug: str | None, sae_slug: str | None) -> SearchScope:
    for slug in (model_slug, sae_slug):
        if slug and not SLUG_RE.match(slug):  # no such slug can exist (and NUL breaks queries)
            raise NotFound(f"No model or SAE {slug!r}.")
    if sae_slug and not model_slug:
        raise ApplicationError(
            "Give the model with the SAE (model=<slug>&sae=<slug>).", code="invalid_scope"
        )
    if model_slug and sae_slug:
        sae = sae_selectors.sae_get(model_slug=model_slug, slug=sae_slug)
        return SearchScope(saes=[sae], sae_ids=[sae.pk])
    saes = list(sae_selectors.sae_list(model_slug=model_slug))
    if (
        model_slug
        and not saes
        and not sae_selectors.language_model_list().filter(slug=model_slug).exists()
    ):
        raise NotFound(f"No model {model_slug}.")
    return SearchScope(saes=saes, sae_ids=[s.pk for s in saes] if model_slug else None)


@dataclass
class SearchResult:
    hits: list[SearchHit]
    # Whether explanations were also matched by meaning: "used"; "unavailable" (no worker
    # gave the query's embedding in time: text matches only, `notice` says so); "none" (no
    # explanation has an embedding yet, or the query was not an explanation search).
    semantic: str = "none"
    notice: str | None = None
    # Text searches: one group per SAE searched (in layer order), hits included, also for an
    # SAE none of whose features fired. None for other searches (group_by_sae groups them).
    groups: list[SearchGroup] | None = None


class ModelRequired(ApplicationError):
    """A text search with no model in scope while several models exist: `models` lists
    their slugs, for the interface to offer as links."""

    code = "choose_model"

    def __init__(self, models: list[str]):
        super().__init__(
            "Searching by text runs one model: choose which (model=<slug>), one of "
            f"{', '.join(models)}.",
            details={"models": models},
        )
        self.models = models


def search(
    *,
    q: str,
    model_slug: str | None = None,
    sae_slug: str | None = None,
    limit: int = 20,
    mode: str = "auto",
) -> list[SearchHit]:
    """Features matching `q` in the scope (one SAE, one model's SAEs, or everything).

    Raises ApplicationError for an empty or over-long query or an unknown mode, ModelRequired
    for a text search with no model in scope among several models, and NotFound for an
    unknown model or SAE. Text search may raise the activation-test errors (no live worker,
    timeout, too many SAEs).
    """
    return search_results(
        q=q, model_slug=model_slug, sae_slug=sae_slug, limit=limit, mode=mode
    ).hits


def search_results(
    *,
    q: str,
    model_slug: str | None = None,
    sae_slug: str | None = None,
    limit: int = 20,
    mode: str = "auto",
    client: str | None = None,
) -> SearchResult:
    """search(), with whether semantic matching took part (SearchResult.semantic, .notice).
    A `text:` search counts against `client`'s limits as an activation test does.

    Explanation searches (mode auto or explanation, no prefix) rank text matches and the
    explanations nearest in meaning together (reciprocal rank fusion), then, in auto mode,
    features peaking on the query as a token. Raises as search() does.
    """
    q, mode = query_and_mode(q, mode)
    limit = max(1, min(limit, MAX_LIMIT))
    scope = _scope(model_slug=model_slug, sae_slug=sae_slug)
    if mode == "index":
        return SearchResult(_by_index(q, scope, limit))
    if mode == "text":
        return _by_text(q, scope, limit, client=client)
    if mode == "token":
        return SearchResult(_by_token(q, scope, limit))
    return _by_explanation_and_meaning(q, scope, limit, add_tokens=mode == "auto")


def query_and_mode(q: str, mode: str) -> tuple[str, str]:
    """The stripped query and the mode to run: in auto mode a `token:` or `text:` prefix or an
    `#index` decides. Raises ApplicationError for an empty or over-long query or a bad mode."""
    q = q.strip()
    if not q:
        raise ApplicationError("Type something to search for.", code="empty_query")
    if "\x00" in q:  # PostgreSQL text cannot hold it: refuse here rather than fail in a query
        raise ApplicationError("A search cannot contain NUL characters.", code="invalid_query")
    if len(q) > MAX_QUERY_CHARS:
        raise ApplicationError(
            f"A search is at most {MAX_QUERY_CHARS} characters.", code="query_too_long"
        )
    if mode not in MODES:
        raise ApplicationError(
            f"Unknown search mode {mode!r}: use one of {', '.join(MODES)}.", code="invalid_mode"
        )
    if mode == "auto":
        if prefix := PREFIX_RE.match(q):
            mode, q = prefix.group(1), prefix.group(2).strip()
            if not q:
                raise ApplicationError(f"Type something after {mode}:", code="empty_query")
        elif INDEX_RE.match(q):
            mode = "index"
    return q, mode


def _by_explanation_and_meaning(
    q: str, scope: SearchScope, limit: int, *, add_tokens: bool
) -> SearchResult:
    """Text matches of explanations fused with the explanations nearest in meaning; with
    `add_tokens`, features peaking on `q` as a token fill what is left of `limit`."""
    hits = _by_explanation(q, scope, limit)
    semantic = _by_meaning(q, scope, limit)
    hits = fuse_ranks([hits, semantic.hits], limit=limit) if semantic.hits else hits
    if add_tokens and len(hits) < limit:
        seen = {(h.model, h.sae, h.index) for h in hits}
        hits += [h for h in _by_token(q, scope, limit) if (h.model, h.sae, h.index) not in seen]
    return SearchResult(hits[:limit], semantic=semantic.semantic, notice=semantic.notice)


def _hits(rows: list[Feature], saes: dict[int, SAE], match: str) -> list[SearchHit]:
    best = explanation_selectors.best_explanations(feature_ids=[f.pk for f in rows])
    out = []
    for f in rows:
        sae = saes[f.sae_id]
        out.append(
            SearchHit(
                model=sae.model.slug,
                sae=sae.slug,
                index=f.index,
                explanation=best[f.pk].text if f.pk in best else None,
                density=f.density,
                max_activation=f.max_activation,
                url=sae_selectors.feature_url(
                    model_slug=sae.model.slug, sae_slug=sae.slug, index=f.index
                ),
                match=match,
            )
        )
    return out


def _sae_map(scope: SearchScope, sae_ids: set[int]) -> dict[int, SAE]:
    known = {s.pk: s for s in scope.saes}
    missing = sae_ids - set(known)
    if missing:
        known.update({s.pk: s for s in sae_selectors.sae_list().filter(pk__in=missing)})
    return known


def _by_index(q: str, scope: SearchScope, limit: int) -> list[SearchHit]:
    match = INDEX_RE.match(q)
    if match is None:
        raise ApplicationError(f"{q!r} is not a feature index (try #123).", code="invalid_index")
    index = int(match.group(1))
    qs = Feature.objects.filter(index=index).only(*sae_selectors.SUMMARY_FIELDS)
    if scope.sae_ids is not None:
        qs = qs.filter(sae_id__in=scope.sae_ids)
    rows = list(qs.order_by("sae_id")[:limit])
    return _hits(rows, _sae_map(scope, {f.sae_id for f in rows}), "index")


# Full-text ranking touches at most this many matching explanations: a word that occurs in
# half of a million explanations must not cost a million rank computations (beyond it, the
# order among equally good matches is arbitrary). Only a shortlist of the best is joined to
# features (scope, statistics) and, in the second pass, scored by trigram similarity.
MAX_CANDIDATES = 2000
# The any-word pass matches many more rows (each word's, not their intersection) for a lesser
# purpose (forgiving a typo), so it looks at fewer.
MAX_ANY_WORD_CANDIDATES = 1000
SHORTLIST = 200
WORD_RE = re.compile(r"\w+")

# Rank explanations alone (ts_rank_cd over the stored tsvector is cheap), then join the
# shortlist to features. `in_scope` lets the caller see whether the scope filter cost results.
SHORTLIST_SQL = """
SELECT f.id, f.sae_id, f.index, f.density, f.max_activation, top.text, top.score, {rank} AS rank,
       {in_scope} AS in_scope
FROM (SELECT * FROM (
        SELECT x.feature_id, x.text, x.score,
               ts_rank_cd(x.search_vector, to_tsquery('english', %(tsquery)s), 1) AS r
        FROM explanations_explanation x
        WHERE x.search_vector @@ to_tsquery('english', %(tsquery)s)
        LIMIT %(candidates)s) m
      ORDER BY r DESC, score DESC NULLS LAST LIMIT %(shortlist)s) top
JOIN saes_feature f ON f.id = top.feature_id
ORDER BY rank DESC, top.score DESC NULLS LAST, f.density DESC
"""

# The same with the scope applied before ranking: for an SAE whose explanations are a small
# share of all of them, where the shortlist of everything may hold too few of its own.
SCOPED_SQL = """
SELECT * FROM (
  SELECT f.id, f.sae_id, f.index, f.density, f.max_activation, x.text, x.score,
         ts_rank_cd(x.search_vector, to_tsquery('english', %(tsquery)s), 1) AS r
  FROM explanations_explanation x JOIN saes_feature f ON f.id = x.feature_id
  WHERE x.search_vector @@ to_tsquery('english', %(tsquery)s) AND f.sae_id = ANY(%(sae_ids)s)
  LIMIT %(candidates)s) c
ORDER BY {rank} DESC, score DESC NULLS LAST, density DESC LIMIT %(shortlist)s
"""

TRIGRAM_SQL = """
SELECT * FROM (
  SELECT f.id, f.sae_id, f.index, f.density, f.max_activation, x.text, x.score,
         word_similarity(%(q)s, x.text) AS rank
  FROM explanations_explanation x JOIN saes_feature f ON f.id = x.feature_id
  WHERE %(q)s <%% x.text {scope}
  LIMIT %(candidates)s) c
ORDER BY rank DESC, score DESC NULLS LAST, density DESC LIMIT %(limit)s
"""


def _by_explanation(q: str, scope: SearchScope, limit: int) -> list[SearchHit]:
    """Explanations matching the query, best first, one hit per feature. Three passes, each
    only when the ones before found fewer than `limit`:

    1. every word of the query, as a word or a word prefix, with English stemming ("bank"
       finds "banks", "banking"; "riv" finds "river"), ranked by ts_rank_cd: the GIN index on
       search_vector finds them;
    2. any of the words, the best of them by ts_rank_cd re-ranked by pg_trgm word similarity
       to the whole query, so one misspelt word ("rivr bank") still ranks the right
       explanation first;
    3. pg_trgm alone (`<%`, the GIN trigram index), for queries whose every word is misspelt
       or a piece from inside a word. The slowest pass, so the last.
    """
    terms = WORD_RE.findall(q.lower())[:10]
    hits: list[SearchHit] = []
    if terms:
        every = " & ".join(f"{t}:*" for t in terms)
        hits = _full_text(every, q, scope, limit, by_similarity=False)
    if len(hits) < limit and len(terms) > 1:
        some = " | ".join(f"{t}:*" for t in terms)
        hits = _unique(hits + _full_text(some, q, scope, limit, by_similarity=True))[:limit]
    if not hits and len(q) >= MIN_TRIGRAM_CHARS:
        sql = TRIGRAM_SQL.replace(
            "{scope}", "AND f.sae_id = ANY(%(sae_ids)s)" if scope.sae_ids is not None else ""
        )
        rows = _rows(
            sql,
            {"q": q, "candidates": MAX_CANDIDATES, "limit": limit * 3, "sae_ids": scope.sae_ids},
        )
        hits = _explanation_hits(rows, scope)[:limit]
    return hits


def _full_text(
    tsquery: str, q: str, scope: SearchScope, limit: int, *, by_similarity: bool
) -> list[SearchHit]:
    """One full-text pass, ordered by ts_rank_cd or (by_similarity) by the word similarity of
    the query to the shortlisted texts."""
    candidates = MAX_ANY_WORD_CANDIDATES if by_similarity else MAX_CANDIDATES
    params = {
        "tsquery": tsquery,
        "q": q,
        "candidates": candidates,
        "shortlist": max(SHORTLIST, 3 * limit),
        "sae_ids": scope.sae_ids,
    }
    in_scope = "f.sae_id = ANY(%(sae_ids)s)" if scope.sae_ids is not None else "true"
    shortlist_rank, scoped_rank = (
        ("word_similarity(%(q)s, top.text)", "word_similarity(%(q)s, text)")
        if by_similarity
        else ("top.r", "r")
    )
    rows = _rows(
        SHORTLIST_SQL.replace("{rank}", shortlist_rank).replace("{in_scope}", in_scope), params
    )
    kept = [r[:-1] for r in rows if r[-1]]
    hits = _explanation_hits(kept, scope)
    if len(hits) < limit and len(kept) < len(rows):  # the scope filter cost results
        hits = _explanation_hits(_rows(SCOPED_SQL.replace("{rank}", scoped_rank), params), scope)
    return hits[:limit]


def _rows(sql: str, params: dict[str, Any]) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _unique(hits: list[SearchHit]) -> list[SearchHit]:
    seen, out = set(), []
    for h in hits:
        key = (h.model, h.sae, h.index)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def _explanation_hits(rows: list[tuple], scope: SearchScope) -> list[SearchHit]:
    """Hits of (feature id, sae id, index, density, max, text, ...) rows in their order, one
    per feature (several explanations of a feature may match; the first is its best)."""
    saes = _sae_map(scope, {r[1] for r in rows})
    hits: list[SearchHit] = []
    for _fid, sae_id, index, density, max_act, text, *_ in rows:
        sae = saes[sae_id]
        hits.append(
            SearchHit(
                model=sae.model.slug,
                sae=sae.slug,
                index=index,
                explanation=text,
                density=density,
                max_activation=max_act,
                match="explanation",
                url=sae_selectors.feature_url(
                    model_slug=sae.model.slug, sae_slug=sae.slug, index=index
                ),
            )
        )
    return _unique(hits)


def _token_ids(q: str, scope: SearchScope) -> list[int]:
    """Ids of the tokens spelled `q` (or ` q`, the word-initial form of BPE vocabularies) in the
    vocabularies of the models in scope. A query in double quotes is taken literally."""
    literal = len(q) >= 2 and q[0] == q[-1] == '"'
    forms = [q[1:-1]] if literal else [q, " " + q]
    ids: set[int] = set()
    for model in {s.model.pk: s.model for s in scope.saes}.values():
        vocab = sae_selectors.vocab_get(model=model)
        for form in forms:
            ids.update(vocab.ids_by_string.get(form, ()))
    return sorted(ids)


def _by_token(q: str, scope: SearchScope, limit: int) -> list[SearchHit]:
    # Token ids differ between models: search each model's SAEs with its own ids.
    by_model: dict[int, list[SAE]] = {}
    for sae in scope.saes:
        by_model.setdefault(sae.model.pk, []).append(sae)
    found: list[tuple[int, int, float]] = []
    for saes in by_model.values():
        ids = _token_ids(q, SearchScope(saes=saes, sae_ids=[s.pk for s in saes]))
        found += selectors.features_peaking_on(
            token_ids=ids, sae_ids=[s.pk for s in saes], limit=limit
        )
    found.sort(key=lambda r: (-r[1], -r[2]))
    order = [fid for fid, _, _ in found[:limit]]
    rows = {
        f.pk: f for f in Feature.objects.filter(pk__in=order).only(*sae_selectors.SUMMARY_FIELDS)
    }
    ordered = [rows[fid] for fid in order if fid in rows]
    return _hits(ordered, _sae_map(scope, {f.sae_id for f in ordered}), "token")


def _by_text(q: str, scope: SearchScope, limit: int, *, client: str | None) -> SearchResult:
    """The `limit` features firing most on `q` in each SAE in scope: the one SAE, or every SAE
    of the one model in scope (or in the explorer), all from one task on its live worker."""
    saes = _text_saes(scope)
    if len(saes) == 1:
        sae = saes[0]
        results = [
            activations.activation_test(
                model_slug=sae.model.slug,
                sae_slug=sae.slug,
                text=q,
                index=None,
                top_k=limit,
                client=client,
            )
        ]
    else:
        results = activations.model_activation_test(saes=saes, text=q, top_k=limit, client=client)
    groups = [
        SearchGroup(
            model=sae.model.slug,
            sae=sae.slug,
            hook_name=sae.hook_name,
            url=sae_selectors.sae_url(model_slug=sae.model.slug, sae_slug=sae.slug),
            hits=_text_hits(sae, result["top_features"]),
        )
        for sae, result in zip(saes, results, strict=True)
    ]
    return SearchResult([h for g in groups for h in g.hits], groups=groups)


def _text_saes(scope: SearchScope) -> list[SAE]:
    """The SAEs a text search runs: those in scope, which must be of one model (with none
    given, the explorer must hold one). Raises ModelRequired, or ApplicationError when there
    is no SAE at all."""
    models = sorted({sae.model.slug for sae in scope.saes})
    if len(models) > 1:
        raise ModelRequired(models)
    if not scope.saes:
        raise ApplicationError(
            "There is no SAE to run the text through yet.", code="invalid_scope", status=404
        )
    return scope.saes


def _text_hits(sae: SAE, top: list[dict]) -> list[SearchHit]:
    rows = {
        f.index: f
        for f in Feature.objects.filter(sae=sae, index__in=[t["index"] for t in top]).only(
            *sae_selectors.SUMMARY_FIELDS
        )
    }
    return [
        SearchHit(
            model=sae.model.slug,
            sae=sae.slug,
            index=t["index"],
            explanation=t.get("explanation"),
            density=rows[t["index"]].density if t["index"] in rows else None,
            max_activation=rows[t["index"]].max_activation if t["index"] in rows else None,
            url=sae_selectors.feature_url(
                model_slug=sae.model.slug, sae_slug=sae.slug, index=t["index"]
            ),
            match="text",
            activation=t["max_value"],
        )
        for t in top
    ]


def group_by_sae(hits: list[SearchHit]) -> list[SearchGroup]:
    """`hits` grouped by SAE, groups in the order of their first hit, hits in their order."""
    groups: dict[tuple[str, str], SearchGroup] = {}
    keys = {(h.model, h.sae) for h in hits}
    hooks = {
        (s.model.slug, s.slug): s.hook_name
        for s in sae_selectors.sae_list().filter(
            model__slug__in={m for m, _ in keys}, slug__in={s for _, s in keys}
        )
    }
    for h in hits:
        key = (h.model, h.sae)
        if key not in groups:
            groups[key] = SearchGroup(
                model=h.model,
                sae=h.sae,
                hook_name=hooks.get(key, ""),
                url=sae_selectors.sae_url(model_slug=h.model, sae_slug=h.sae),
                hits=[],
            )
        groups[key].hits.append(h)
    return list(groups.values())


# ---- semantic search: explanations near the query in meaning ------------------------------------

# Reciprocal rank fusion: a hit's score is the sum over rankings of 1 / (RRF_K + rank). 60 is
# the constant of the original paper (Cormack et al. 2009); it lets a hit ranked well by both
# searches beat one ranked first by only one, without comparing their incomparable scores
# (ts_rank_cd and cosine similarity).
RRF_K = 60
# Query embeddings never change for a given model: kept a week, bounded by the cache's memory.
QUERY_EMBEDDING_CACHE_SECONDS = 7 * 24 * 3600
# When no worker took a query's task at all, searches skip semantic matching this long rather
# than each waiting EXPLORER_EMBED_TIMEOUT_S for nobody.
NO_EMBED_WORKER_SECONDS = 30
NO_EMBED_WORKER_KEY = "embed-query:no-worker"


def embed_timeout_s() -> float:
    """How long a search waits for a query embedding (settings.EXPLORER_EMBED_TIMEOUT_S)."""
    return settings.EXPLORER_EMBED_TIMEOUT_S


def _query_embedding_key(text: str) -> str:
    from explorer.search.models import EMBEDDING_MODEL

    return "embed-query:v1:" + hashlib.sha256(f"{EMBEDDING_MODEL}\0{text}".encode()).hexdigest()


def query_embedding_store(*, text: str, vector: list[float]) -> None:
    """Remember a query's embedding (called by the worker that computed it)."""
    cache.set(_query_embedding_key(text), vector, QUERY_EMBEDDING_CACHE_SECONDS)


def query_embedding(*, text: str) -> list[float] | None:
    """The embedding of `text`, from the cache or else from a worker (task
    tasks.EMBED_QUERY on settings.EXPLORER_EMBED_QUEUE), waiting at most
    EXPLORER_EMBED_TIMEOUT_S. None when no worker answered in time, or Redis (the cache and
    the broker) is unreachable: the caller searches without it. The worker caches what it
    computes even after the wait ended, so a worker that was busy loading the model serves the
    same query at once next time."""
    try:
        return _query_embedding(text)
    except Exception as exc:
        if outages.service_of(exc) != outages.REDIS:
            raise
        outages.tracker.down(outages.REDIS, exc)  # logged once; words still match
        return None


def _query_embedding(text: str) -> list[float] | None:
    vector = cache.get(_query_embedding_key(text))
    if vector is not None:
        return vector
    if cache.get(NO_EMBED_WORKER_KEY):
        return None
    timeout = embed_timeout_s()
    result = tasks.send(
        tasks.EMBED_QUERY,
        queue=settings.EXPLORER_EMBED_QUEUE,
        kwargs={"text": text},
        expires=timeout,
    )
    try:
        answer = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        # PENDING: no worker even started it (task_track_started is on), so none is listening.
        if result.state == "PENDING":
            log.warning(
                "no worker on queue %s took a query embedding within %.1f s",
                settings.EXPLORER_EMBED_QUEUE,
                timeout,
            )
            cache.set(NO_EMBED_WORKER_KEY, True, NO_EMBED_WORKER_SECONDS)
            result.revoke()
        return None
    finally:
        result.forget()
    if not isinstance(answer, list):
        log.error("query embedding failed: %r", answer)
        return None
    return answer


@dataclass
class SemanticHits:
    hits: list[SearchHit]
    semantic: str  # as SearchResult.semantic
    notice: str | None = None


def _by_meaning(q: str, scope: SearchScope, limit: int) -> SemanticHits:
    """Features whose explanations are nearest `q` in meaning (cosine similarity of
    all-MiniLM-L6-v2 embeddings, at least EXPLORER_SEMANTIC_MIN_SIMILARITY), nearest first."""
    if not selectors.embeddings_exist():
        return SemanticHits([], "none")
    vector = query_embedding(text=q)
    if vector is None:
        return SemanticHits(
            [],
            "unavailable",
            "Matching by meaning is unavailable right now (no embedding "
            "worker answered); these are text matches only.",
        )
    rows = selectors.semantic_neighbours(
        vector=vector,
        sae_ids=scope.sae_ids,
        limit=3 * limit,
        min_similarity=settings.EXPLORER_SEMANTIC_MIN_SIMILARITY,
    )
    return SemanticHits(_explanation_hits(rows, scope)[:limit], "used")


def fuse_ranks(rankings: list[list[SearchHit]], *, limit: int) -> list[SearchHit]:
    """One ranking from several (reciprocal rank fusion, RRF_K), best first, one hit per
    feature; ties keep the order of the first ranking that has the hit."""
    scores: dict[tuple[str, str, int], float] = {}
    first: dict[tuple[str, str, int], SearchHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = (hit.model, hit.sae, hit.index)
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(key, hit)
    order = sorted(first, key=lambda k: -scores[k])  # stable: insertion order breaks ties
    return [first[k] for k in order[:limit]]


# ---- embeddings of explanations -----------------------------------------------------------------


def explanation_embeddings_store(*, rows: list[tuple[int, str, list[float]]], model: str) -> int:
    """Store (explanation id, the text embedded, vector) rows, replacing older vectors. Rows of
    explanations deleted meanwhile are skipped. Returns the number stored."""
    from explorer.search.models import ExplanationEmbedding

    if not rows:
        return 0
    with transaction.atomic():
        # KEY SHARE locks keep the explanations from being deleted before the insert commits.
        locked = _rows(
            "SELECT id FROM explanations_explanation WHERE id = ANY(%(ids)s) FOR KEY SHARE",
            {"ids": [r[0] for r in rows]},
        )
        alive = {r[0] for r in locked}
        objs = [
            ExplanationEmbedding(
                explanation_id=pk,
                embedding=vector,
                model=model,
                text_md5=hashlib.md5(text.encode()).hexdigest(),
            )
            for pk, text, vector in rows
            if pk in alive
        ]
        ExplanationEmbedding.objects.bulk_create(
            objs,
            update_conflicts=True,
            unique_fields=["explanation"],
            update_fields=["embedding", "model", "text_md5", "created"],
        )
    return len(objs)


def embeddings_schedule(*, sae_id: int | None = None) -> None:
    """Embed the explanations (of SAE `sae_id`, or all) that lack an embedding, on a worker
    (explain queue), once the current transaction commits; the SAE page lists them as still
    being computed until a sweep finds none left. Cheap when there is nothing to do."""

    def send() -> None:
        embeddings_backlog_mark(sae_id=sae_id)
        tasks.send(tasks.EMBED_EXPLANATIONS, queue=tasks.EXPLAIN_QUEUE, kwargs={"sae_id": sae_id})

    transaction.on_commit(send)


BACKLOG_MARK_SQL = """
INSERT INTO search_embeddingbacklog (sae_id, since)
SELECT id, clock_timestamp() FROM saes_sae WHERE %(sae)s::bigint IS NULL OR id = %(sae)s
ON CONFLICT (sae_id) DO UPDATE SET since = EXCLUDED.since
"""


def embeddings_backlog_mark(*, sae_id: int | None) -> None:
    """Record that the explanations of SAE `sae_id` (None: of every SAE) wait for embeddings.
    Stamped with the database's clock at the call, so a sweep that looked before it (and may
    have missed the new texts) does not clear it. Call after the texts are committed."""
    with connection.cursor() as cur:
        cur.execute(BACKLOG_MARK_SQL, {"sae": sae_id})


def embeddings_backlog_clear(*, sae_id: int | None, looked_at: Any) -> None:
    """A sweep that began looking at `looked_at` (selectors.database_clock) found nothing left
    to embed for SAE `sae_id` (None: any SAE): clear the marks made before that."""
    rows = EmbeddingBacklog.objects.filter(since__lte=looked_at)
    if sae_id is not None:
        rows = rows.filter(sae_id=sae_id)
    rows.delete()


def hit_dicts(hits: list[SearchHit]) -> list[dict]:
    return [asdict(h) for h in hits]


def group_dicts(groups: list[SearchGroup]) -> list[dict]:
    return [asdict(g) for g in groups]
