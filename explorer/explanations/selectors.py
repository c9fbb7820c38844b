"""Reads for explanations. Importable without torch."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce

from explorer.explanations.models import Explanation


def explanation_list(*, feature_id: int) -> QuerySet[Explanation]:
    """A feature's explanations, best first (scored before unscored, then newest), with
    `vote_total` (the sum of votes) and the author loaded."""
    return (Explanation.objects.filter(feature_id=feature_id)
            .select_related("author")
            .annotate(vote_total=Coalesce(Sum("votes__value"), 0))
            .order_by(F("score").desc(nulls_last=True), "-created", "-id"))


def best_explanations(*, feature_ids: Iterable[int]) -> dict[int, Explanation]:
    """{feature id: its best explanation} for the features that have one (one query)."""
    ids = list(feature_ids)
    if not ids:
        return {}
    rows = (Explanation.objects.filter(feature_id__in=ids)
            .order_by("feature_id", F("score").desc(nulls_last=True), "-created", "-id")
            .distinct("feature_id")
            .only("id", "feature_id", "text", "method", "score"))
    return {row.feature_id: row for row in rows}
