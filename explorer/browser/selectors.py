"""Reads behind the browser's pages: home, SAE table and map, feature page.

Everything here is keyword-only and raises `NotFound` for an unknown model, SAE or feature.
Sized for large SAEs: the feature table pages by keyset (never OFFSET). Reads of features, the
vocabulary (one per-process cache) and index runs that are not particular to a page are in
explorer/saes/selectors.py.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from explorer.browser import tokens as tk
from explorer.core.exceptions import NotFound
from explorer.explanations.models import Explanation
from explorer.explanations.selectors import best_explanations, explanation_list
from explorer.importance.models import FeatureImportance
from explorer.saes import selectors as sae_selectors
from explorer.saes.evaluations import METRICS
from explorer.saes.indexing import map_failure
from explorer.saes.models import (
    SAE,
    WEIGHT_FACT_FIELDS,
    Example,
    Feature,
    IndexRun,
    LanguageModel,
    SAEEvaluation,
)
from workers.engine import explain

# --- SAE quality metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricCell:
    """One metric of an evaluation, formatted; ``value`` None when not computed or undefined."""

    key: str
    label: str
    help: str
    better: str
    value: float | None
    text: str


def _metric_text(value: float | None, kind: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if kind == "fraction":
        return "0%" if value == 0 else f"{value * 100:.3g}%"
    return f"{value:.4g}".replace("-", "\u2212")


# The model page compares SAEs on these (the CE losses behind loss recovered stay on SAE pages).
COMPARED_METRICS = (
    "loss_recovered",
    "explained_variance",
    "l0",
    "kl_div",
    "mse",
    "dead_fraction",
    "dense_fraction",
)


def metric_cells(metrics: dict | None, keys: Iterable[str] | None = None) -> list[MetricCell]:
    """The metrics named by ``keys`` (default all) in display order; values None when
    ``metrics`` is None."""
    metrics = metrics or {}
    wanted = set(keys) if keys is not None else None
    return [
        MetricCell(
            key=m.key,
            label=m.label,
            help=m.help,
            better=m.better,
            value=metrics.get(m.key),
            text=_metric_text(metrics.get(m.key), m.kind),
        )
        for m in METRICS
        if wanted is None or m.key in wanted
    ]


@dataclass
class MetricsPanel:
    """What the SAE page shows of its evaluations: the newest finished one's figures and the
    state of the newest one (queued/running: "computing"; failed: its error)."""

    done: SAEEvaluation | None
    latest: SAEEvaluation | None
    cells: list[MetricCell]

    @property
    def computing(self) -> bool:
        return self.latest is not None and self.latest.status in (
            SAEEvaluation.Status.QUEUED,
            SAEEvaluation.Status.RUNNING,
        )

    @property
    def failed(self) -> bool:
        return self.latest is not None and self.latest.status == SAEEvaluation.Status.FAILED


def metrics_panel(*, sae: SAE) -> MetricsPanel:
    latest = sae_selectors.evaluation_latest(sae=sae)
    # one query when there is none or the newest is done (the common cases)
    if latest is None or latest.status == SAEEvaluation.Status.DONE:
        done = latest
    else:
        done = sae_selectors.evaluation_latest(sae=sae, done=True)
    return MetricsPanel(
        done=done,
        latest=latest,
        cells=metric_cells(done.metrics) if done else [],
    )


# --- work still to do after indexing ----------------------------------------------------------


@dataclass
class PendingStep:
    """One thing a worker still computes for an SAE, as the SAE page lists it."""

    key: str  # "map", "embeddings", "evaluation"
    title: str
    text: str


_PENDING_SQL = """
SELECT EXISTS (SELECT 1 FROM saes_feature WHERE sae_id = %(sae)s),
       EXISTS (SELECT 1 FROM saes_saemap WHERE sae_id = %(sae)s),
       EXISTS (SELECT 1 FROM search_embeddingbacklog WHERE sae_id = %(sae)s)
"""

# Only while embeddings are scheduled and unfinished: it reads every explanation of the SAE.
_EMBEDDED_SQL = """
SELECT count(*) FILTER (WHERE e.explanation_id IS NULL OR e.text_md5 <> md5(x.text)), count(*)
FROM explanations_explanation x
JOIN saes_feature f ON f.id = x.feature_id
LEFT JOIN search_explanationembedding e ON e.explanation_id = x.id
WHERE f.sae_id = %(sae)s
"""


def pending_steps(*, sae: SAE, metrics: MetricsPanel | None = None) -> list[PendingStep]:
    """What is still being computed for an indexed SAE, in the order workers do it: the feature
    map, the embeddings of its explanations (semantic search; scheduled and not yet all done,
    an explanation whose text changed since counting as not embedded), the quality evaluation
    (from `metrics` when given). Empty before the first index run (nothing is scheduled then)
    and once everything is done. One query of index probes when nothing is pending (the
    common case), two or three otherwise."""
    with connection.cursor() as cur:
        cur.execute(_PENDING_SQL, {"sae": sae.pk})
        indexed, laid_out, embedding = cur.fetchone()
        todo = total = 0
        if indexed and embedding:
            cur.execute(_EMBEDDED_SQL, {"sae": sae.pk})
            todo, total = cur.fetchone()
    if not indexed:
        return []
    steps = []
    if not laid_out:
        failure = map_failure(sae_id=sae.pk)
        steps.append(
            PendingStep(
                key="map",
                title="Feature map",
                text=f"the worker could not lay it out ({failure}); indexing the SAE again "
                "tries once more."
                if failure
                else "not laid out yet: a worker computes it from the decoder directions "
                "after indexing.",
            )
        )
    if todo:
        state = "pending" if todo == total else f"{total - todo:,} of {total:,} done"
        steps.append(
            PendingStep(
                key="embeddings",
                title="Label embeddings",
                text=f"{state}: search by meaning finds an explanation once it is embedded "
                "(after the feature map); text search finds them all already.",
            )
        )
    latest = metrics.latest if metrics else sae_selectors.evaluation_latest(sae=sae)
    if latest is not None and latest.status in (
        SAEEvaluation.Status.QUEUED,
        SAEEvaluation.Status.RUNNING,
    ):
        running = latest.status == SAEEvaluation.Status.RUNNING
        steps.append(
            PendingStep(
                key="evaluation",
                title="Quality metrics",
                text=("running" if running else "queued") + " on held-out text.",
            )
        )
    return steps


# --- home -----------------------------------------------------------------------------------------


@dataclass
class SAESummary:
    sae: SAE
    features: int
    live: int
    run: IndexRun | None = None  # an index run in progress
    metrics: list[MetricCell] = field(default_factory=list)  # the newest finished evaluation

    @property
    def run_percent(self) -> int | None:
        if self.run is None:
            return None
        total = self.run.tokens_total or self.run.tokens
        return min(100, round(100 * self.run.tokens_done / total)) if total else 0


@dataclass
class ModelSummary:
    model: LanguageModel
    saes: list[SAESummary]


def model_summaries() -> list[ModelSummary]:
    """Every model with its SAEs, their feature counts (indexed and live), any index run in
    progress and their newest metrics, in five queries."""
    saes = list(
        SAE.objects.select_related("model")
        .defer("model__vocab")
        .order_by("model__slug", "layer", "slug")
    )
    counts = {
        row["sae_id"]: row
        for row in Feature.objects.filter(sae__in=saes)
        .values("sae_id")
        .annotate(n=Count("id"), live=Count("id", filter=Q(dead=False)))
    }
    runs = {
        r.sae_id: r
        for r in IndexRun.objects.filter(
            status__in=[IndexRun.Status.QUEUED, IndexRun.Status.RUNNING]
        )
        .order_by("sae_id", "-created")
        .distinct("sae_id")
    }
    evals = sae_selectors.evaluations_done_by_sae(sae_ids=[s.pk for s in saes])
    by_model: dict[int, ModelSummary] = {}
    for m in sae_selectors.language_model_list():
        by_model[m.pk] = ModelSummary(model=m, saes=[])
    for sae in saes:
        row = counts.get(sae.pk, {"n": 0, "live": 0})
        done = evals.get(sae.pk)
        by_model[sae.model_id].saes.append(
            SAESummary(
                sae=sae,
                features=row["n"],
                live=row["live"],
                run=runs.get(sae.pk),
                metrics=metric_cells(done.metrics if done else None, COMPARED_METRICS),
            )
        )
    return list(by_model.values())


@dataclass
class FeatureCard:
    """A feature shown as a card: where it lives, its best explanation, its top example."""

    feature: Feature
    explanation: str
    strip: tk.Strip | None
    tokens: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    max_position: int | None = None
    bos_excluded: bool = False  # position 0 of the example is a BOS left out of statistics

    @property
    def url(self) -> str:
        sae = self.feature.sae
        return f"/{sae.model.slug}/{sae.slug}/{self.feature.index}/"

    @property
    def chart_json(self) -> str:
        """The `tokens` chart's data (data-chart-json; the template escapes it)."""
        return json.dumps(
            {
                "tokens": self.tokens,
                "values": [v if math.isfinite(v) else None for v in self.values],
                "max": self.feature.max_activation or None,
                "maxPosition": self.max_position,
                "bosExcluded": self.bos_excluded,
                "window": 5,
            },
            ensure_ascii=False,
        )


def _feature_rows() -> QuerySet[Feature]:
    return Feature.objects.select_related("sae__model").defer(
        "sae__model__vocab",
        "hist_edges",
        "hist_counts",
        *WEIGHT_FACT_FIELDS,
    )


def feature_cards(*, features: Iterable[Feature], width: int | None = 5) -> list[FeatureCard]:
    """Cards for `features` with their best explanation and top example (3 queries + vocab)."""
    features = list(features)
    ids = [f.pk for f in features]
    best = best_explanations(feature_ids=ids)
    by_sae: dict[int, list[int]] = {}
    for f in features:
        by_sae.setdefault(f.sae_id, []).append(f.index)
    tops = {
        (sae_id, e.feature_index): e
        for sae_id, indices in by_sae.items()
        for e in sae_selectors.stored_examples(
            sae_id=sae_id, feature_indices=indices, kind=Example.Kind.TOP, strongest_only=True
        )
    }
    cards = []
    bos: dict[int, bool] = {}  # per SAE: position 0 of its windows is an excluded BOS
    for f in features:
        ex = tops.get((f.sae_id, f.index))
        card = FeatureCard(
            feature=f, explanation=best[f.pk].text if f.pk in best else "", strip=None
        )
        if ex is not None:
            if f.sae_id not in bos:
                bos[f.sae_id] = sae_selectors.bos_excluded(sae=f.sae)
            card.tokens = sae_selectors.vocab_get(model=f.sae.model).tokens(ex.token_ids)
            card.values = ex.values
            card.max_position = ex.max_position
            card.bos_excluded = bos[f.sae_id]
            card.strip = tk.strip(
                card.tokens,
                card.values,
                max_value=f.max_activation or ex.max_value,
                max_position=ex.max_position,
                width=width,
                bos_excluded=card.bos_excluded,
            )
        cards.append(card)
    return cards


def recent_features(*, limit: int = 6) -> list[Feature]:
    """Features explained most recently, else the most recently indexed live ones."""
    recent_ids = list(
        Explanation.objects.order_by("-created", "-id").values_list("feature_id", flat=True)[
            : limit * 3
        ]
    )
    ids = list(dict.fromkeys(recent_ids))[:limit]
    if ids:
        rows = {f.pk: f for f in _feature_rows().filter(pk__in=ids)}
        return [rows[i] for i in ids if i in rows]
    return list(_feature_rows().filter(dead=False).order_by("-pk")[:limit])


def random_features(*, limit: int = 6, rng: random.Random | None = None) -> list[Feature]:
    """Up to `limit` distinct live features at random, by primary-key probes (each one an
    index seek, so this stays fast on millions of features)."""
    rng = rng or random.Random()
    bounds = Feature.objects.filter(dead=False).order_by("pk").values_list("pk", flat=True)
    first, last = bounds.first(), bounds.last()
    if first is None:
        return []
    found: dict[int, Feature] = {}
    for _ in range(limit * 3):
        if len(found) >= limit:
            break
        probe = rng.randint(first, last)
        f = _feature_rows().filter(dead=False, pk__gte=probe).order_by("pk").first()
        if f is not None:
            found.setdefault(f.pk, f)
    return list(found.values())


# --- SAE page -------------------------------------------------------------------------------------

# Sort keys a reader can pick -> (column, default direction).
TABLE_SORTS: dict[str, tuple[str, str]] = {
    "index": ("index", "asc"),
    "density": ("density", "desc"),
    "max": ("max_activation", "desc"),
}
TABLE_PAGE_SIZE = 50


@dataclass
class TableRow:
    index: int
    density: float
    max_activation: float
    dead: bool
    explanation: str


@dataclass
class TablePage:
    rows: list[TableRow]
    sort: str
    direction: str
    next_cursor: str | None  # pass as ?after=
    prev_cursor: str | None  # pass as ?before=


def parse_cursor(cursor: str, *, sort: str) -> tuple[float, int]:
    """`<value>~<index>` (or `<index>` when sorting by index). Raises NotFound when malformed."""
    try:
        if sort == "index":
            i = int(cursor)
            return float(i), i
        value, index = cursor.split("~")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(cursor)
        return v, int(index)
    except ValueError:
        raise NotFound(f"Bad page cursor {cursor!r}.") from None


def _cursor(row: Feature, column: str, sort: str) -> str:
    return str(row.index) if sort == "index" else f"{getattr(row, column)!r}~{row.index}"


def feature_table(
    *,
    sae: SAE,
    sort: str = "index",
    direction: str | None = None,
    q: str = "",
    live_only: bool = False,
    after: str | None = None,
    before: str | None = None,
    limit: int = TABLE_PAGE_SIZE,
) -> TablePage:
    """One page of an SAE's features, sorted, optionally filtered by explanation text.

    Keyset pagination: the page after `after` (or before `before`) is found with
    `(column, index) >< (value, index)` on the (sae, column) index, so page 5,000 costs what
    page 1 does. Ties on the sort column are broken by index, in the same direction.
    """
    if sort not in TABLE_SORTS:
        sort = "index"
    column, default_dir = TABLE_SORTS[sort]
    direction = direction if direction in ("asc", "desc") else default_dir
    qs = Feature.objects.filter(sae=sae).only("id", "index", "density", "max_activation", "dead")
    if live_only:
        qs = qs.filter(dead=False)
    if q:
        qs = qs.filter(
            pk__in=Explanation.objects.filter(feature__sae=sae, text__icontains=q).values(
                "feature_id"
            )
        )

    backwards = before is not None and after is None
    cursor = before if backwards else after
    # Walking backwards is walking forwards in the opposite direction, then reversing the page.
    walk_desc = (direction == "desc") != backwards
    if cursor is not None:
        v, i = parse_cursor(cursor, sort=sort)
        if sort == "index":
            qs = qs.filter(index__lt=i) if walk_desc else qs.filter(index__gt=i)
        elif walk_desc:
            # The first filter bounds the index range scan; the second breaks ties exactly.
            qs = qs.filter(**{f"{column}__lte": v}).filter(
                Q(**{f"{column}__lt": v}) | Q(**{column: v, "index__lt": i})
            )
        else:
            qs = qs.filter(**{f"{column}__gte": v}).filter(
                Q(**{f"{column}__gt": v}) | Q(**{column: v, "index__gt": i})
            )
    order = (
        [F(column).desc(), F("index").desc()] if walk_desc else [F(column).asc(), F("index").asc()]
    )
    if sort == "index":
        order = order[1:]
    rows = list(qs.order_by(*order)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    best = best_explanations(feature_ids=[r.pk for r in rows])
    out = [
        TableRow(
            index=r.index,
            density=r.density,
            max_activation=r.max_activation,
            dead=r.dead,
            explanation=best[r.pk].text if r.pk in best else "",
        )
        for r in rows
    ]
    has_next = more if not backwards else True
    has_prev = (cursor is not None) if not backwards else more
    return TablePage(
        rows=out,
        sort=sort,
        direction=direction,
        next_cursor=_cursor(rows[-1], column, sort) if rows and has_next else None,
        prev_cursor=_cursor(rows[0], column, sort) if rows and has_prev else None,
    )


# --- feature page ---------------------------------------------------------------------------------


@dataclass
class LogitToken:
    token: str
    display: str
    value: float


@dataclass
class Neighbour:
    index: int
    cosine: float
    explanation: str
    dead: bool


@dataclass
class ExampleView:
    tokens: list[str]
    values: list[float]
    max_value: float
    max_position: int
    strip: tk.Strip
    number: int = 0  # position in the page's examples data (data-example)


@dataclass
class ExampleGroup:
    """Top examples, or one quantile interval with its bounds and its share of activations."""

    title: str
    kind: str
    low: float | None
    high: float | None
    share: float | None  # fraction of non-zero activations in [low, high); None if unknown
    examples: list[ExampleView]


@dataclass
class FeaturePage:
    sae: SAE
    feature: Feature
    explanations: list[Explanation]
    top_logits: list[LogitToken]
    bottom_logits: list[LogitToken]
    neighbours: list[Neighbour]
    groups: list[ExampleGroup]
    prev_index: int | None
    next_index: int | None
    # What the feature is rather than what it means (workers/engine/explain.flags): [(flag,
    # words)] for "dense" and "document start", from the stored density and top examples.
    flags: list[tuple[str, str]] = field(default_factory=list)
    # Position 0 of every example window is a BOS token left out of the statistics.
    bos_excluded: bool = False

    @property
    def explanation(self) -> str:
        return self.explanations[0].text if self.explanations else ""

    @property
    def url(self) -> str:
        return f"/{self.sae.model.slug}/{self.sae.slug}/{self.feature.index}/"

    @property
    def logit_scale(self) -> float:
        """The |value| drawn as a full logit bar: the largest of both lists."""
        return max((abs(t.value) for t in self.top_logits + self.bottom_logits), default=1.0)

    def chart_data(self) -> dict[str, Any]:
        """The JSON each chart of the page draws (json_script; shapes in frontend
        chartRenderers)."""
        f = self.feature
        examples = [
            {
                "tokens": ex.tokens,
                "values": [v if math.isfinite(v) else None for v in ex.values],
                "maxPosition": ex.max_position,
            }
            for group in self.groups
            for ex in group.examples
        ]
        return {
            "histogram": {
                "edges": list(f.hist_edges),
                "counts": list(f.hist_counts),
                "width": 360,
                "height": 140,
                "label": f"Activations of feature {f.index}",
            },
            "logits": {
                "positive": [{"token": t.token, "value": t.value} for t in self.top_logits],
                "negative": [{"token": t.token, "value": t.value} for t in self.bottom_logits],
            },
            "examples": {
                "max": f.max_activation or None,
                "bosExcluded": self.bos_excluded,
                "examples": examples,
            },
        }


def interval_share(edges: list[float], counts: list[int], low: float, high: float) -> float | None:
    """The fraction of the histogram's mass in [low, high), splitting bins linearly."""
    total = sum(counts)
    if not total or len(edges) != len(counts) + 1:
        return None
    inside = 0.0
    for (a, b), c in zip(itertools.pairwise(edges), counts, strict=False):
        if b <= a:
            inside += c if low <= a < high else 0
            continue
        overlap = max(0.0, min(b, high) - max(a, low))
        inside += c * overlap / (b - a)
    return inside / total


# Raw SQL: the ORM spends longer compiling this query (a correlated subquery) than PostgreSQL
# spends running it, on the page's hottest path. The explanation order is best_explanations'.
_NEIGHBOURS_SQL = """
SELECT f."index", f.dead,
       (SELECT x.text FROM explanations_explanation x WHERE x.feature_id = f.id
        ORDER BY x.score DESC NULLS LAST, x.created DESC, x.id DESC LIMIT 1)
FROM saes_feature f
WHERE f.sae_id = %(sae)s AND f."index" = ANY(%(indices)s)
"""


def _neighbours(*, sae: SAE, feature: Feature) -> list[Neighbour]:
    """Decoder-cosine neighbours with their best explanation, in one query."""
    n_idx = list(feature.neighbour_indices)
    with connection.cursor() as cur:
        cur.execute(_NEIGHBOURS_SQL, {"sae": sae.pk, "indices": n_idx})
        rows = {index: (dead, text) for index, dead, text in cur.fetchall()}
    return [
        Neighbour(
            index=i,
            cosine=c,
            dead=rows[i][0] if i in rows else False,
            explanation=(rows[i][1] or "") if i in rows else "",
        )
        for i, c in zip(n_idx, feature.neighbour_cosines, strict=False)
    ]


def feature_page_get(
    *,
    model_slug: str,
    sae_slug: str,
    index: int,
    width: int | None = 16,
    top_n: int = 20,
    per_quantile: int = 5,
) -> FeaturePage:
    """Everything the feature page shows, in four queries (the vocab is cached). Raises NotFound."""
    feature = sae_selectors.feature_with_sae(
        model_slug=model_slug, sae_slug=sae_slug, index=index, one_to_one=FeatureImportance
    )
    sae = feature.sae
    vocab = sae_selectors.vocab_get(model=sae.model)

    def logits(ids: list[int], values: list[float]) -> list[LogitToken]:
        return [
            LogitToken(token=vocab.token(i), display=tk.display_token(vocab.token(i)), value=v)
            for i, v in zip(ids, values, strict=False)
        ]

    neighbours = _neighbours(sae=sae, feature=feature)

    scale = feature.max_activation if feature.max_activation > 0 else 1.0
    bos_excluded = sae_selectors.options_exclude_bos(feature.run_options)

    def view(ex: sae_selectors.StoredExample) -> ExampleView:
        toks = vocab.tokens(ex.token_ids)
        vals = ex.values
        return ExampleView(
            tokens=toks,
            values=vals,
            max_value=ex.max_value,
            max_position=ex.max_position,
            strip=tk.strip(
                toks,
                vals,
                max_value=scale,
                max_position=ex.max_position,
                width=width,
                bos_excluded=bos_excluded,
            ),
        )

    examples = sae_selectors.stored_examples(sae_id=sae.pk, feature_indices=[feature.index])
    groups: list[ExampleGroup] = []
    top = [view(e) for e in examples if e.kind == Example.Kind.TOP][:top_n]
    if top:
        groups.append(
            ExampleGroup(
                title="Top activations", kind="top", low=None, high=None, share=None, examples=top
            )
        )
    by_q: dict[int, list[sae_selectors.StoredExample]] = {}
    for e in examples:
        if e.kind == Example.Kind.QUANTILE:
            by_q.setdefault(e.quantile_index, []).append(e)
    for q in sorted(by_q, reverse=True):
        exs = by_q[q]
        low, high = exs[0].quantile_low, exs[0].quantile_high
        fractions = list(feature.quantile_fractions)
        if q < len(fractions):  # the exact share, counted at indexing time
            share = fractions[q]
        else:  # older index runs: estimated from the histogram
            share = (
                interval_share(list(feature.hist_edges), list(feature.hist_counts), low, high)
                if low is not None and high is not None
                else None
            )
        title = (
            f"Interval {low:.3g}–{high:.3g}"
            if low is not None and high is not None
            else f"Interval {q}"
        )
        groups.append(
            ExampleGroup(
                title=title,
                kind="quantile",
                low=low,
                high=high,
                share=share,
                examples=[view(e) for e in exs[:per_quantile]],
            )
        )

    for number, ex in enumerate(ex for group in groups for ex in group.examples):
        ex.number = number
    starts = [
        explain.at_document_start(
            previous=vocab.token(e.token_ids[e.max_position - 1]) if e.max_position > 0 else None,
            offset=e.offset,
        )
        for e in examples
        if e.kind == Example.Kind.TOP
    ]
    found = [] if feature.dead else explain.flags(density=feature.density, starts=starts)
    return FeaturePage(
        sae=sae,
        feature=feature,
        explanations=explanation_list(feature_id=feature.pk),
        top_logits=logits(list(feature.top_logit_ids), list(feature.top_logit_values)),
        bottom_logits=logits(list(feature.bottom_logit_ids), list(feature.bottom_logit_values)),
        neighbours=neighbours,
        groups=groups,
        prev_index=index - 1 if index > 0 else None,
        next_index=index + 1 if index + 1 < sae.d_sae else None,
        flags=[(f, explain.FLAG_WORDS[f]) for f in found],
        bos_excluded=bos_excluded,
    )
