"""Writes for explanations: adding, editing and voting (people); LLM explain and score jobs.

Jobs (ExplainJob rows) are created here and run by workers/explain.py on the `explain` queue
through explain_job_run; every failure is stored on its row with the reason.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError, NotFound, PermissionDenied
from explorer.explanations import selectors
from explorer.explanations.methods import Contexts, Score, llm, offline
from explorer.explanations.models import ExplainJob, Explanation, Vote
from explorer.saes.models import SAE, Feature

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1000
HUMAN_METHOD = "human"
# A job "running" for longer than the explain queue's hard time limit lost its worker.
STALE_RUNNING_S = 900
# "offline", "human" or "llm:<model id>".
METHOD_RE = re.compile(r"^(offline|human|llm:[\w.\-/:@]{1,150})$")


def explanation_create(
    *,
    feature: Feature,
    text: str,
    method: str,
    author: AbstractBaseUser | None = None,
    score: float | None = None,
    score_method: str = "",
) -> Explanation:
    """Add an explanation to `feature`.

    Raises ApplicationError (code invalid_explanation) for an empty or over-long text, or a
    method that is not offline, human or llm:<model>.
    """
    text = " ".join(text.split())  # one line: explanations are labels, shown in tables
    if not text or len(text) > MAX_TEXT_CHARS:
        raise ApplicationError(
            f"An explanation needs 1 to {MAX_TEXT_CHARS} characters.", code="invalid_explanation"
        )
    if not METHOD_RE.match(method):
        raise ApplicationError(
            f"Unknown explanation method {method!r}: use offline, human or llm:<model>.",
            code="invalid_explanation",
        )
    return Explanation.objects.create(
        feature=feature,
        text=text,
        method=method,
        author=author,
        score=score,
        score_method=score_method,
    )


def vote_cast(*, user: AbstractBaseUser, explanation_id: int, value: int) -> Vote:
    """Record `user`'s vote (+1 / -1) on an explanation, once.

    Raises ApplicationError (invalid_vote) for another value, ApplicationError (already_voted,
    409) when the user has voted on it already (retract with vote_retract first), NotFound for
    an unknown explanation.
    """
    if value not in (-1, 1):
        raise ApplicationError("A vote is +1 or -1.", code="invalid_vote")
    if not Explanation.objects.filter(pk=explanation_id).exists():
        raise NotFound(f"No explanation {explanation_id}.")
    try:
        # The unique constraint decides, so two racing requests cannot both vote.
        with transaction.atomic():
            return Vote.objects.create(user=user, explanation_id=explanation_id, value=value)
    except IntegrityError:
        raise ApplicationError(
            "You have already voted on this explanation; retract that vote to change it.",
            code="already_voted",
            status=409,
        ) from None


def vote_retract(*, user: AbstractBaseUser, explanation_id: int) -> None:
    """Remove `user`'s vote on an explanation. Raises NotFound when there is none."""
    deleted, _ = Vote.objects.filter(user=user, explanation_id=explanation_id).delete()
    if not deleted:
        raise NotFound(f"You have no vote on explanation {explanation_id}.")


# -- human explanations ---------------------------------------------------------------------------


def _embed_later(*, sae_id: int) -> None:
    """New or changed texts get their semantic-search embedding on a worker, after commit."""
    from explorer.search.services import embeddings_schedule

    embeddings_schedule(sae_id=sae_id)


def explanation_submit(*, feature: Feature, text: str, author: AbstractBaseUser) -> Explanation:
    """A signed-in user's explanation ("human"), then its score (explanation_score_request).

    Raises ApplicationError (invalid_explanation) for an empty or over-long text.
    """
    with transaction.atomic():
        row = explanation_create(feature=feature, text=text, method=HUMAN_METHOD, author=author)
        explanation_score_request(explanation=row)
        _embed_later(sae_id=feature.sae_id)
    return row


def explanation_edit(*, user: AbstractBaseUser, explanation_id: int, text: str) -> Explanation:
    """Change the text of one's own human explanation; its old score no longer applies, so
    it is cleared and asked for again.

    Raises NotFound, PermissionDenied (someone else's, or not a human explanation) and
    ApplicationError (invalid_explanation) for an empty or over-long text.
    """
    text = " ".join(text.split())
    if not text or len(text) > MAX_TEXT_CHARS:
        raise ApplicationError(
            f"An explanation needs 1 to {MAX_TEXT_CHARS} characters.", code="invalid_explanation"
        )
    with transaction.atomic():
        row = Explanation.objects.select_for_update().filter(pk=explanation_id).first()
        if row is None:
            raise NotFound(f"No explanation {explanation_id}.")
        if row.method != HUMAN_METHOD or row.author_id != user.pk:
            raise PermissionDenied("You can only edit your own explanations.")
        row.text, row.edited = text, timezone.now()
        row.score, row.score_method, row.score_sample_size = None, "", None
        row.save(update_fields=["text", "edited", "score", "score_method", "score_sample_size"])
        explanation_score_request(explanation=row)
        _embed_later(sae_id=row.feature.sae_id)
    return row


# -- LLM jobs and scores --------------------------------------------------------------------------


def endpoint_configured() -> bool:
    return bool(settings.EXPLAINER_BASE_URL)


def endpoint_for(*, base_url: str, model: str) -> llm.Endpoint:
    """The endpoint of a job: its URL and model, the key and tunables from settings."""
    return llm.Endpoint(
        base_url=base_url,
        model=model,
        api_key=settings.EXPLAINER_API_KEY,
        timeout_s=settings.EXPLAINER_TIMEOUT_S,
        max_retries=settings.EXPLAINER_MAX_RETRIES,
        backoff_s=settings.EXPLAINER_BACKOFF_S,
        max_backoff_s=settings.EXPLAINER_MAX_BACKOFF_S,
    )


def _enqueue(job_ids: list[int]) -> None:
    """Queue jobs on `explain` in batches of EXPLAINER_BATCH_SIZE, after the rows commit."""
    if not job_ids:
        return
    size = settings.EXPLAINER_BATCH_SIZE

    def send() -> None:
        for i in range(0, len(job_ids), size):
            tasks.send(
                tasks.EXPLAIN_BATCH, queue=tasks.EXPLAIN_QUEUE, args=(job_ids[i : i + size],)
            )

    transaction.on_commit(send)


def _features(*, sae: SAE, indices: Iterable[int] | None, limit: int | None) -> QuerySet[Feature]:
    qs = Feature.objects.filter(sae=sae, dead=False).order_by("index")
    if indices is not None:
        wanted = sorted(set(indices))
        qs = qs.filter(index__in=wanted)
        missing = set(wanted) - set(qs.values_list("index", flat=True))
        if missing:
            raise NotFound(f"{sae} has no live feature(s) {sorted(missing)[:10]}.")
    return qs[:limit] if limit is not None else qs


def explain_jobs_create(
    *,
    sae: SAE,
    indices: Iterable[int] | None = None,
    limit: int | None = None,
    base_url: str | None = None,
    model: str | None = None,
    user: AbstractBaseUser | None = None,
) -> list[ExplainJob]:
    """Queue LLM explain jobs for the live features of `sae` (all, or `indices`, at most
    `limit`), skipping features that already have an explain job queued or running.

    `base_url`/`model` default to EXPLAINER_BASE_URL/EXPLAINER_MODEL (an admin may name
    another endpoint from the command line; the API never lets users choose one).
    Raises ApplicationError (no_endpoint, 503) when no endpoint is configured, NotFound for
    unknown or dead indices.
    """
    base_url = base_url or settings.EXPLAINER_BASE_URL
    if not base_url:
        raise ApplicationError(
            "No LLM endpoint is configured (set EXPLAINER_BASE_URL); "
            "offline explanations are made at index time.",
            code="no_endpoint",
            status=503,
        )
    model = model or settings.EXPLAINER_MODEL
    with transaction.atomic():
        busy = set(
            ExplainJob.objects.filter(
                feature__sae=sae,
                kind=ExplainJob.Kind.EXPLAIN,
                status__in=(ExplainJob.Status.QUEUED, ExplainJob.Status.RUNNING),
            ).values_list("feature_id", flat=True)
        )
        jobs = ExplainJob.objects.bulk_create(
            [
                ExplainJob(
                    feature=f,
                    kind=ExplainJob.Kind.EXPLAIN,
                    base_url=base_url,
                    model=model,
                    requested_by=user,
                )
                for f in _features(sae=sae, indices=indices, limit=limit)
                if f.pk not in busy
            ]
        )
        _enqueue([j.pk for j in jobs])
    return jobs


def score_jobs_create(
    *,
    sae: SAE,
    indices: Iterable[int] | None = None,
    limit: int | None = None,
    base_url: str | None = None,
    model: str | None = None,
) -> list[ExplainJob]:
    """Queue score jobs for the unscored explanations of `sae`'s live features: LLM-judged
    with an endpoint (given or from settings), else the offline proxy."""
    base_url = base_url if base_url is not None else (settings.EXPLAINER_BASE_URL or "")
    model = (model or settings.EXPLAINER_MODEL) if base_url else ""
    with transaction.atomic():
        rows = Explanation.objects.filter(
            feature__in=_features(sae=sae, indices=indices, limit=limit), score__isnull=True
        ).only("id", "feature_id")
        jobs = ExplainJob.objects.bulk_create(
            [
                ExplainJob(
                    feature_id=e.feature_id,
                    explanation=e,
                    kind=ExplainJob.Kind.SCORE,
                    base_url=base_url,
                    model=model,
                )
                for e in rows
            ]
        )
        _enqueue([j.pk for j in jobs])
    return jobs


def explanation_score_request(*, explanation: Explanation) -> ExplainJob | None:
    """Score a new or edited explanation: queue an LLM-judge job when an endpoint is
    configured; otherwise compute the offline proxy now (cheap: two small queries). An
    explanation the proxy cannot read stays unscored. Returns the queued job, or None."""
    if endpoint_configured():
        job = ExplainJob.objects.create(
            feature_id=explanation.feature_id,
            explanation=explanation,
            kind=ExplainJob.Kind.SCORE,
            base_url=settings.EXPLAINER_BASE_URL,
            model=settings.EXPLAINER_MODEL,
        )
        _enqueue([job.pk])
        return job
    try:
        _store_score(
            explanation,
            offline.score(explanation=explanation.text, contexts=_contexts(explanation.feature)),
        )
    except offline.UnscorableError:
        pass
    return None


def _contexts(feature: Feature) -> Contexts:
    return selectors.scoring_contexts(feature=feature, n=settings.EXPLAINER_SCORE_SAMPLES)


def _store_score(explanation: Explanation, score: Score) -> None:
    Explanation.objects.filter(pk=explanation.pk).update(
        score=score.value, score_method=score.method, score_sample_size=score.sample_size
    )
    explanation.score, explanation.score_method, explanation.score_sample_size = (
        score.value,
        score.method,
        score.sample_size,
    )


def _claim(job_id: int) -> ExplainJob | None:
    """Take a queued job (conditional UPDATE: no two workers run one job); None when it is
    gone, done, or taken."""
    taken = ExplainJob.objects.filter(pk=job_id, status=ExplainJob.Status.QUEUED).update(
        status=ExplainJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        started=timezone.now(),
        reason="",
    )
    if not taken:
        return None
    return ExplainJob.objects.select_related("feature__sae__model", "explanation").get(pk=job_id)


def _finish(
    job: ExplainJob, usage: llm.Usage, *, reason: str = "", retryable: bool = False
) -> None:
    job.status = ExplainJob.Status.FAILED if reason else ExplainJob.Status.DONE
    job.reason, job.retryable, job.finished = reason, retryable, timezone.now()
    ExplainJob.objects.filter(pk=job.pk).update(
        status=job.status,
        reason=reason,
        retryable=retryable,
        finished=job.finished,
        explanation=job.explanation,
        prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
        completion_tokens=F("completion_tokens") + usage.completion_tokens,
    )


def explain_job_run(
    *,
    job_id: int,
    endpoint: llm.Endpoint | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExplainJob | None:
    """Run one job; the result or the failure (with its reason) is stored on the row.

    An explain job asks the endpoint for an explanation, stores it as "llm:<model>", then runs
    a score job for it at once (LLM judge, same endpoint). A score job stores score,
    score_method and sample size on its explanation. `endpoint` replaces the one built from
    the job row and settings (tests use short timeouts). Returns None when the job was not
    claimable (missing, done, or running elsewhere): a second delivery is harmless.
    """
    job = _claim(job_id)
    if job is None:
        log.info("explain job %s is gone, done or taken; skipping", job_id)
        return None
    usage = llm.Usage()
    try:
        if job.kind == ExplainJob.Kind.EXPLAIN:
            ep = endpoint or endpoint_for(base_url=job.base_url, model=job.model)
            examples, promoted = selectors.explain_evidence(feature=job.feature)
            if not examples:
                raise offline.UnscorableError("the feature has no indexed examples to show")
            text = llm.explain(ep, examples=examples, promoted=promoted, usage=usage, sleep=sleep)
            job.explanation = explanation_create(
                feature=job.feature, text=text, method=f"llm:{ep.model}"
            )
            _embed_later(sae_id=job.feature.sae_id)
        else:
            if job.explanation is None:
                raise offline.UnscorableError("the explanation was deleted")
            contexts = _contexts(job.feature)
            if job.base_url:
                ep = endpoint or endpoint_for(base_url=job.base_url, model=job.model)
                score = llm.judge(
                    ep,
                    explanation=job.explanation.text,
                    contexts=contexts,
                    usage=usage,
                    sleep=sleep,
                )
            else:
                score = offline.score(explanation=job.explanation.text, contexts=contexts)
            _store_score(job.explanation, score)
    except llm.EndpointError as exc:
        _finish(job, usage, reason=exc.reason, retryable=exc.retryable)
        return job
    except (offline.UnscorableError, ApplicationError) as exc:
        _finish(job, usage, reason=str(getattr(exc, "message", exc)), retryable=False)
        return job
    except Exception as exc:  # a time limit or a bug: record it, so the job is not stuck "running"
        _finish(job, usage, reason=f"{type(exc).__name__}: {exc}", retryable=True)
        raise
    _finish(job, usage)
    if job.kind == ExplainJob.Kind.EXPLAIN:
        score_job = ExplainJob.objects.create(
            feature=job.feature,
            explanation=job.explanation,
            kind=ExplainJob.Kind.SCORE,
            base_url=job.base_url,
            model=job.model,
            requested_by=job.requested_by,
        )
        explain_job_run(job_id=score_job.pk, endpoint=endpoint, sleep=sleep)
    return job


def explain_jobs_fail(*, job_ids: Iterable[int], reason: str) -> int:
    """Mark still-queued jobs failed (retryable), e.g. the rest of a batch that ran out of time."""
    return ExplainJob.objects.filter(pk__in=list(job_ids), status=ExplainJob.Status.QUEUED).update(
        status=ExplainJob.Status.FAILED, reason=reason, retryable=True, finished=timezone.now()
    )


def explain_jobs_retry(
    *, sae: SAE | None = None, stale_after_s: float = STALE_RUNNING_S
) -> list[int]:
    """Queue again the retryable failures (and jobs left "running" by a worker that died more
    than `stale_after_s` ago). Returns their ids."""
    stale = timezone.now() - timedelta(seconds=stale_after_s)
    qs = ExplainJob.objects.filter(
        Q(status=ExplainJob.Status.FAILED, retryable=True)
        | Q(status=ExplainJob.Status.RUNNING, started__lt=stale)
    )
    if sae is not None:
        qs = qs.filter(feature__sae=sae)
    with transaction.atomic():
        ids = list(qs.select_for_update(skip_locked=True).values_list("pk", flat=True))
        ExplainJob.objects.filter(pk__in=ids).update(status=ExplainJob.Status.QUEUED, finished=None)
        _enqueue(ids)
    return ids
