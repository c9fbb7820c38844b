"""Feature importance under ablation: ask for one feature (open to everyone: bounded, see
explorer/importance/services.py), read its status and result, ask for a whole SAE (needs an
account), and the SAE overview data (density, importance, largest decoder cosine)."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from explorer.accounts.permissions import ANONYMOUS, ReadOpenWriteAccount, api_key_from_request
from explorer.api.schemas import (
    RATE_LIMITED,
    StrictSchema,
    error_responses,
    rate_limited_openapi,
)
from explorer.core.clients import request_client
from explorer.importance import selectors, services
from explorer.saes import selectors as sae_selectors

router = Router(tags=["importance"])
ERRORS = error_responses(400, 401, 403, 404, 422)
LIMITED = {**ERRORS, **RATE_LIMITED}
FEATURE = "/models/{model}/saes/{sae}/features/{index}/importance"


class OpenWrites(ReadOpenWriteAccount):
    """Like the API's default, but an anonymous POST goes through as ANONYMOUS: for the one
    write that is open to everyone (a wrong API key is still refused)."""

    def __call__(self, request: HttpRequest):
        user = super().__call__(request)
        signed_in = getattr(getattr(request, "user", None), "is_authenticated", False)
        if user is None and api_key_from_request(request) is None and not signed_in:
            request.auth_method = None
            return ANONYMOUS
        return user


class TokenMoveOut(Schema):
    token_id: int
    token: str
    value: float  # mean change in next-token probability under zero ablation


class LossDeltaOut(Schema):
    zero: float | None
    mean: float | None
    resample: float | None


class ImportanceOut(Schema):
    status: str | None  # null: never requested; queued / running / done / failed
    progress: float
    error: str
    loss_delta: LossDeltaOut | None  # nats per next-token prediction; set when done
    loss_clean: float | None
    n_contexts: int
    n_predictions: int
    up: list[TokenMoveOut]
    down: list[TokenMoveOut]
    computed_at: datetime | None
    density: float


class ImportanceIn(StrictSchema):
    force: bool = False  # recompute a finished result


class BulkOut(Schema):
    queued: int


class OverviewOut(Schema):
    # The features with an importance (parallel columns):
    index: list[int]
    density: list[float]
    importance: list[float]  # zero-ablation loss delta, nats
    # Every live feature, by index: its largest decoder cosine to another feature (3 decimals).
    max_cosine: list[float | None]
    n_live: int
    n_dead: int


@router.get(
    FEATURE,
    response={200: ImportanceOut, **ERRORS},
    summary="A feature's importance under ablation",
)
def importance_get(request: HttpRequest, model: str, sae: str, index: int):
    feature = sae_selectors.feature_by_slugs(model_slug=model, sae_slug=sae, index=index)
    return selectors.importance_dict(feature=feature, row=selectors.importance_for(feature=feature))


@router.post(
    FEATURE,
    response={202: ImportanceOut, **LIMITED},
    auth=OpenWrites(),
    summary="Compute a feature's importance (queued on the model's live worker; no account needed)",
    description="Queues a job unless one is queued or running, or the result is done (and not "
    "`force`). Each job queued counts against the client's IMPORTANCE_RATE_LIMIT per "
    "IMPORTANCE_RATE_WINDOW_S (an account, else the address); past it 429 with Retry-After.",
    openapi_extra=rate_limited_openapi("Too many importance jobs queued in this window."),
)
def importance_compute(
    request: HttpRequest, model: str, sae: str, index: int, payload: ImportanceIn | None = None
):
    feature = sae_selectors.feature_by_slugs(model_slug=model, sae_slug=sae, index=index)
    row = services.importance_request(
        feature=feature, force=bool(payload and payload.force), client=request_client(request)
    )
    return Status(202, selectors.importance_dict(feature=feature, row=row))


@router.post(
    "/models/{model}/saes/{sae}/importance",
    response={202: BulkOut, **LIMITED},
    summary="Compute the importance of every live feature of an SAE (needs an account)",
    description="A run that queues anything counts against the account's "
    "IMPORTANCE_BULK_RATE_LIMIT per IMPORTANCE_RATE_WINDOW_S; past it 429 with Retry-After.",
    openapi_extra=rate_limited_openapi("Too many whole-SAE runs in this window."),
)
def importance_bulk(
    request: HttpRequest, model: str, sae: str, payload: ImportanceIn | None = None
):
    sae_row = sae_selectors.sae_get(model_slug=model, slug=sae)
    return Status(
        202,
        {
            "queued": services.importance_bulk_request(
                sae=sae_row, force=bool(payload and payload.force), client=request_client(request)
            )
        },
    )


@router.get(
    "/models/{model}/saes/{sae}/importance",
    response={200: OverviewOut, **ERRORS},
    summary="Density against importance, and the largest decoder cosine of every live feature",
)
def importance_overview(request: HttpRequest, model: str, sae: str):
    return selectors.importance_overview(sae=sae_selectors.sae_get(model_slug=model, slug=sae))
