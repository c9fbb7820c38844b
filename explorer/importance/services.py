"""Writes for feature importance: request a job (one feature or a whole SAE), and the worker's
start / progress / result / failure records. Tasks are enqueued after commit.

Who may ask: computing one feature is open to everyone (the feature page's button works
signed out). It is bounded: a feature has one row, a queued or running job is never queued
twice and a finished one is not recomputed unless `force`, so anonymous clicks cost at most one
job per feature; and each job queued counts against its client's IMPORTANCE_RATE_LIMIT per
IMPORTANCE_RATE_WINDOW_S, so a walk over every feature (each job a turn of the live worker) is
bounded. Bulk runs over a whole SAE need an account (the API enforces it) and count against
IMPORTANCE_BULK_RATE_LIMIT when they queue anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.core.limits import Rate
from explorer.importance.models import FeatureImportance
from explorer.saes.models import SAE, Feature

Status = FeatureImportance.Status
PENDING = (Status.QUEUED, Status.RUNNING)
# Features per bulk task on the `index` queue: big enough that one forward pass batches
# several features, small enough that progress shows and a failure costs little.
BULK_CHUNK = 32


def _enqueue_one(*, feature_id: int, model_slug: str) -> None:
    transaction.on_commit(
        lambda: tasks.send(
            tasks.IMPORTANCE_FEATURE,
            queue=tasks.live_queue(model_slug),
            kwargs={"feature_id": feature_id},
        )
    )


def _enqueue_bulk(*, feature_ids: list[int]) -> None:
    chunks = [feature_ids[i : i + BULK_CHUNK] for i in range(0, len(feature_ids), BULK_CHUNK)]

    def send() -> None:
        for chunk in chunks:
            tasks.send(
                tasks.IMPORTANCE_FEATURES, queue=tasks.INDEX_QUEUE, kwargs={"feature_ids": chunk}
            )

    transaction.on_commit(send)


def _hit(*, name: str, limit: int, what: str, client: str | None) -> None:
    if client is not None:
        rate = Rate(name=name, limit=limit, window_s=settings.IMPORTANCE_RATE_WINDOW_S, what=what)
        rate.hit(client=client)


@transaction.atomic
def importance_request(
    *, feature: Feature, force: bool = False, client: str | None = None
) -> FeatureImportance:
    """Queue the importance of `feature` on its model's live queue, unless a job is already
    queued or running, or it is done (and not `force`). Returns the row as it now stands. A job
    queued counts against `client`'s importance rate (None: no limit).

    Raises ApplicationError (code "dead_feature") for a dead feature: it has no contexts;
    RateLimited (429) past the rate, having changed nothing.
    """
    if feature.dead:
        raise ApplicationError(
            "This feature never fired on the indexed corpus, so it has no "
            "contexts to ablate it on.",
            code="dead_feature",
        )
    row, created = FeatureImportance.objects.select_for_update().get_or_create(feature=feature)
    if not created and (row.status in PENDING or (row.status == Status.DONE and not force)):
        return row
    _hit(
        name="importance",
        limit=settings.IMPORTANCE_RATE_LIMIT,
        what="importance jobs",
        client=client,
    )
    row.status, row.progress, row.error = Status.QUEUED, 0.0, ""
    row.save(update_fields=["status", "progress", "error"])
    _enqueue_one(feature_id=feature.pk, model_slug=feature.sae.model.slug)
    return row


@transaction.atomic
def importance_bulk_request(*, sae: SAE, force: bool = False, client: str | None = None) -> int:
    """Queue every live feature of `sae` that has no importance yet (all of them with `force`)
    on the `index` queue, in chunks. Pending jobs are left alone. Returns how many were queued.
    A run that queues anything counts against `client`'s bulk rate (None: no limit); past it
    RateLimited (429), having changed nothing.
    """
    live = Feature.objects.filter(sae=sae, dead=False)
    skip = Q(importance__status__in=PENDING)
    if not force:
        skip |= Q(importance__status=Status.DONE)
    ids = list(live.exclude(skip).order_by("index").values_list("pk", flat=True))
    if ids:
        _hit(
            name="importance-bulk",
            limit=settings.IMPORTANCE_BULK_RATE_LIMIT,
            what="whole-SAE importance runs",
            client=client,
        )
    existing = set(
        FeatureImportance.objects.filter(feature_id__in=ids).values_list("feature_id", flat=True)
    )
    FeatureImportance.objects.filter(feature_id__in=existing).update(
        status=Status.QUEUED, progress=0.0, error=""
    )
    FeatureImportance.objects.bulk_create(
        [FeatureImportance(feature_id=i) for i in ids if i not in existing], batch_size=2000
    )
    if ids:
        _enqueue_bulk(feature_ids=ids)
    return len(ids)


def importance_start(*, feature_ids: Sequence[int]) -> list[int]:
    """Mark queued rows running (a conditional UPDATE, so two workers never both take one).
    Returns the feature ids this caller claimed."""
    claimed = []
    for fid in feature_ids:
        n = FeatureImportance.objects.filter(feature_id=fid, status=Status.QUEUED).update(
            status=Status.RUNNING, progress=0.0
        )
        if n:
            claimed.append(fid)
    return claimed


def importance_progress(*, feature_ids: Sequence[int], progress: float) -> None:
    FeatureImportance.objects.filter(feature_id__in=feature_ids, status=Status.RUNNING).update(
        progress=min(max(progress, 0.0), 1.0)
    )


def importance_store(*, feature_id: int, result: dict) -> None:
    """Write one engine result (`FeatureImportance` of the engine, as a dict) and mark it done."""
    deltas = result.get("loss_delta", {})
    up = result.get("up", [])
    down = result.get("down", [])
    FeatureImportance.objects.filter(feature_id=feature_id).update(
        status=Status.DONE,
        progress=1.0,
        error="",
        loss_zero=deltas.get("zero"),
        loss_mean=deltas.get("mean"),
        loss_resample=deltas.get("resample"),
        loss_clean=result.get("loss_clean") if result.get("n_predictions") else None,
        n_contexts=result.get("n_contexts", 0),
        n_predictions=result.get("n_predictions", 0),
        up_token_ids=[int(t) for t, _ in up],
        up_values=[float(v) for _, v in up],
        down_token_ids=[int(t) for t, _ in down],
        down_values=[float(v) for _, v in down],
        computed_at=timezone.now(),
    )


def importance_fail(*, feature_ids: Sequence[int], error: str) -> None:
    """Record a failure; the feature page shows `error` and its button asks again."""
    FeatureImportance.objects.filter(feature_id__in=feature_ids).exclude(status=Status.DONE).update(
        status=Status.FAILED, error=error[:2000]
    )
