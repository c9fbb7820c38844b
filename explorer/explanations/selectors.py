"""Reads for explanations. Importable without torch.

This module and explorer.saes.selectors import each other (features are shown with their best
explanation; explanation contexts need token strings), so each reads the other's names at call
time only.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable

from django.db import connection
from django.db.models import F, QuerySet

from explorer.core.rows import Columns, Part
from explorer.explanations.methods import Context, Contexts
from explorer.explanations.models import ExplainJob, Explanation, Vote
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import Example, Feature


@functools.cache
def _explanation_columns() -> Columns:
    from django.contrib.auth import get_user_model

    return Columns(
        Part(Explanation, "x", leave_out=("search_vector",)),
        Part(get_user_model(), "u", leave_out=("password",)),
    )


@functools.cache
def _explanation_sql() -> str:
    from django.contrib.auth import get_user_model

    return f"""
SELECT {_explanation_columns().sql},
       COALESCE((SELECT SUM(v.value) FROM {Vote._meta.db_table} v
                 WHERE v.explanation_id = x.id), 0) AS vote_total
FROM {Explanation._meta.db_table} x
LEFT JOIN {get_user_model()._meta.db_table} u ON u.id = x.author_id
WHERE x.feature_id = %s
ORDER BY x.score DESC NULLS LAST, vote_total DESC, x.created DESC, x.id DESC
"""


def explanation_list(*, feature_id: int) -> list[Explanation]:
    """A feature's explanations, best first (scored before unscored, then by votes, then
    newest), with `vote_total` (the sum of votes) and the author loaded. Hand-written SQL: the
    feature page reads this on every view, and the ORM took longer to compile it than
    PostgreSQL to answer it."""
    columns = _explanation_columns()
    with connection.cursor() as cur:
        cur.execute(_explanation_sql(), [feature_id])
        rows = cur.fetchall()
    out = []
    for row in rows:
        explanation, author = columns.instances(row)
        explanation.author = author
        explanation.vote_total = row[columns.width]
        out.append(explanation)
    return out


def explanation_dicts(*, feature_id: int) -> list[dict]:
    """A feature's explanations, best first, as the API shows them."""
    return [
        {
            "id": e.id,
            "text": e.text,
            "method": e.method,
            "score": e.score,
            "author": e.author.get_username() if e.author else None,
            "votes": e.vote_total,
        }
        for e in explanation_list(feature_id=feature_id)
    ]


def my_votes(*, user, explanation_ids: Iterable[int]) -> dict[int, int]:
    """{explanation id: the user's vote (+1/-1)} for the ones this user voted on."""
    if not getattr(user, "is_authenticated", False):
        return {}
    return dict(
        Vote.objects.filter(user=user, explanation_id__in=list(explanation_ids)).values_list(
            "explanation_id", "value"
        )
    )


def best_explanations(*, feature_ids: Iterable[int]) -> dict[int, Explanation]:
    """{feature id: its best explanation} for the features that have one (one query)."""
    ids = list(feature_ids)
    if not ids:
        return {}
    rows = (
        Explanation.objects.filter(feature_id__in=ids)
        .order_by("feature_id", F("score").desc(nulls_last=True), "-created", "-id")
        .distinct("feature_id")
        .only("id", "feature_id", "text", "method", "score")
    )
    return {row.feature_id: row for row in rows}


# -- evidence for explainers and judges ---------------------------------------------------------


def _context(example: sae_selectors.StoredExample, vocab: sae_selectors.Vocab) -> Context:
    return Context(tokens=vocab.tokens(example.token_ids), position=example.max_position)


def explain_evidence(*, feature: Feature, limit: int = 10) -> tuple[list[Context], list[str]]:
    """(the feature's top examples as contexts, strongest first; its top logit tokens)."""
    vocab = sae_selectors.vocab_get(model=feature.sae.model)
    rows = sae_selectors.stored_examples(
        sae_id=feature.sae_id, feature_indices=[feature.index], kind=Example.Kind.TOP
    )[:limit]
    return [_context(e, vocab) for e in rows], vocab.tokens(feature.top_logit_ids[:10])


def scoring_contexts(*, feature: Feature, n: int, seed: int = 0) -> Contexts:
    """Up to `n` activating contexts (the feature's indexed examples with a positive maximum,
    by kind name then strongest first) and up to `n` non-activating ones (top examples of
    other features of the same SAE, chosen by a seeded shuffle of their indices so a score is
    reproducible). See methods.offline for what "non-activating" presumes."""
    vocab = sae_selectors.vocab_get(model=feature.sae.model)
    own = sae_selectors.stored_examples(
        sae_id=feature.sae_id, feature_indices=[feature.index], min_value=0.0
    )
    own.sort(key=lambda e: (e.kind, -e.max_value))
    activating = [_context(e, vocab) for e in own[:n]]
    others = [i for i in range(feature.sae.d_sae) if i != feature.index]
    random.Random(f"{seed}:{feature.pk}").shuffle(others)
    picked = others[: 4 * n]  # a few more than needed: dead features have no examples
    by_feature = sae_selectors.stored_examples(
        sae_id=feature.sae_id,
        feature_indices=sorted(picked),
        kind=Example.Kind.TOP,
        strongest_only=True,
    )
    random.Random(f"{seed}:{feature.pk}:order").shuffle(by_feature)
    non_activating = [_context(e, vocab) for e in by_feature[:n]]
    return Contexts(activating=activating, non_activating=non_activating)


# -- jobs -----------------------------------------------------------------------------------------


def explain_job_list(
    *, feature_id: int | None = None, status: str | None = None
) -> QuerySet[ExplainJob]:
    qs = ExplainJob.objects.select_related("feature", "explanation")
    if feature_id is not None:
        qs = qs.filter(feature_id=feature_id)
    if status is not None:
        qs = qs.filter(status=status)
    return qs.order_by("-created", "-id")
