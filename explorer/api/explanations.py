"""Explanations beyond listing, adding and voting (those live in features.py, beside the
feature they belong to): editing one's own, queueing an LLM explanation of a feature and
reading its jobs (with the reason of a failure and the tokens used). Writes need an account."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from explorer.api.schemas import StrictSchema, error_responses
from explorer.explanations import selectors as explanation_selectors
from explorer.explanations import services
from explorer.saes import selectors as sae_selectors

router = Router(tags=["explanations"])
ERRORS = error_responses(400, 401, 403, 404, 409, 422, 503)
FEATURE = "/models/{model}/saes/{sae}/features/{index}"


class ExplanationEditIn(StrictSchema):
    text: str


class ExplanationDetailOut(Schema):
    id: int
    text: str
    method: str
    score: float | None
    score_method: str
    score_sample_size: int | None
    author: str | None
    edited: datetime | None


class ExplainJobOut(Schema):
    id: int
    kind: str
    status: str  # queued | running | done | failed
    reason: str  # why it failed ("" otherwise)
    retryable: bool
    attempts: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    explanation: int | None
    created: datetime
    finished: datetime | None


def _detail(row) -> dict:
    return {
        "id": row.id,
        "text": row.text,
        "method": row.method,
        "score": row.score,
        "score_method": row.score_method,
        "score_sample_size": row.score_sample_size,
        "author": row.author.get_username() if row.author else None,
        "edited": row.edited,
    }


def _job(job) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "reason": job.reason,
        "retryable": job.retryable,
        "attempts": job.attempts,
        "model": job.model,
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "explanation": job.explanation_id,
        "created": job.created,
        "finished": job.finished,
    }


@router.patch(
    "/explanations/{explanation_id}",
    response={200: ExplanationDetailOut, **ERRORS},
    summary="Edit your own explanation (its score is measured again)",
)
def explanation_edit(request: HttpRequest, explanation_id: int, payload: ExplanationEditIn):
    return _detail(
        services.explanation_edit(
            user=request.auth, explanation_id=explanation_id, text=payload.text
        )
    )


@router.post(
    FEATURE + "/explain",
    response={202: list[ExplainJobOut], **ERRORS},
    summary="Queue an LLM explanation of a feature (needs a configured endpoint)",
)
def feature_explain(request: HttpRequest, model: str, sae: str, index: int):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    sae_selectors.feature_get(sae=row, index=index)  # 404 for an unknown index
    jobs = services.explain_jobs_create(sae=row, indices=[index], user=request.auth)
    return Status(202, [_job(j) for j in jobs])


@router.get(
    FEATURE + "/explain-jobs",
    response={200: list[ExplainJobOut], **ERRORS},
    summary="A feature's explain and score jobs, newest first",
)
def feature_explain_jobs(request: HttpRequest, model: str, sae: str, index: int):
    feature = sae_selectors.feature_by_slugs(model_slug=model, sae_slug=sae, index=index)
    return [_job(j) for j in explanation_selectors.explain_job_list(feature_id=feature.pk)[:50]]
