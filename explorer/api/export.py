"""GET /models/{model}/saes/{sae}/export/{features|examples}?format=csv|json: streamed exports
(explorer/search/exports.py), so a 100k-feature SAE downloads in constant memory. They need an
account unless EXPORTS_OPEN, and are limited per account (`exports.export_admit`)."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from explorer.api.schemas import RATE_LIMITED, error_responses, rate_limited_openapi
from explorer.core.clients import request_client
from explorer.saes import selectors as sae_selectors
from explorer.search import exports

router = Router(tags=["export"])
ERRORS = {**error_responses(400, 401, 404, 422), **RATE_LIMITED}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
LIMITS = f"""

Needs an account (a session or `Authorization: Bearer <key>`; 401 without one) unless the
site sets `EXPORTS_OPEN`. Each account may run {settings.EXPORT_CONCURRENCY} export(s) at once
and start {settings.EXPORT_RATE_LIMIT} per {settings.EXPORT_RATE_WINDOW_S} s, and the server
runs at most {settings.EXPORT_MAX_RUNNING} at once; past a limit the answer is 429 with
`Retry-After` (code `too_many_at_once` or `rate_limited`)."""
OPENAPI = rate_limited_openapi(
    "Too many exports running (this account's, or everyone's) or started in this window."
)


def _response(request: HttpRequest, stream, *, name: str, fmt: str) -> StreamingHttpResponse:
    slots = exports.export_admit(user=request.auth, client=request_client(request))
    response = StreamingHttpResponse(
        exports.export_limited(stream, slots), content_type=CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response["X-Accel-Buffering"] = "no"  # let nginx pass chunks on as they come
    return response


@router.get(
    "/models/{model}/saes/{sae}/export/features",
    response={200: None, **ERRORS},
    summary="Export every feature (CSV or JSON, streamed)",
    description="Every feature of the SAE by index, with its best explanation." + LIMITS,
    openapi_extra=OPENAPI,
)
def export_features(
    request: HttpRequest, model: str, sae: str, format: Literal["csv", "json"] = "csv"
):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    stream = exports.feature_export(sae=row, fmt=format)
    return _response(request, stream, name=f"{model}-{sae}-features", fmt=format)


@router.get(
    "/models/{model}/saes/{sae}/export/examples",
    response={200: None, **ERRORS},
    summary="Export every example with tokens and values (CSV or JSON, streamed)",
    description="Every example of every feature, with token strings and per-token values." + LIMITS,
    openapi_extra=OPENAPI,
)
def export_examples(
    request: HttpRequest, model: str, sae: str, format: Literal["csv", "json"] = "csv"
):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    stream = exports.example_export(
        sae=row, vocab=sae_selectors.vocab_get(model=row.model), fmt=format
    )
    return _response(request, stream, name=f"{model}-{sae}-examples", fmt=format)
