"""Writes for steering showcases: an SAE's set is replaced whole, and computing one is sent to
the `index` queue by name (explorer/core/tasks.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from django.db import transaction

from explorer.core import tasks
from explorer.saes.models import SAE
from explorer.showcases.models import SteeringShowcase


@dataclass(frozen=True)
class ShowcaseRow:
    """One showcase as the worker computed it (SteeringShowcase's fields, rank by position)."""

    feature_index: int
    prompt: str
    strength: float
    score: float
    fluency_drop: float
    distinct: float
    text: str
    default_text: str
    label: str = ""
    settings: dict = field(default_factory=dict)


def showcases_replace(*, sae: SAE, rows: Sequence[ShowcaseRow]) -> int:
    """Replace `sae`'s showcases with `rows`, best first (one transaction: readers see the old
    set or the new one). Returns how many were stored."""
    with transaction.atomic():
        SteeringShowcase.objects.filter(sae=sae).delete()
        SteeringShowcase.objects.bulk_create(
            SteeringShowcase(sae=sae, rank=rank, **asdict(row)) for rank, row in enumerate(rows)
        )
    return len(rows)


def showcases_schedule(*, sae_id: int) -> None:
    """Compute SAE `sae_id`'s showcases on a worker (`index` queue), after this transaction."""
    transaction.on_commit(
        lambda: tasks.send(tasks.SHOWCASES, queue=tasks.INDEX_QUEUE, args=(sae_id,))
    )
