"""GET /models/{model}/saes/{sae}/export/{features|examples}?format=csv|json: streamed exports
(explorer/search/exports.py), so a 100k-feature SAE downloads in constant memory."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from explorer.api.schemas import error_responses
from explorer.saes import selectors as sae_selectors
from explorer.search import exports

router = Router(tags=["export"])
ERRORS = error_responses(400, 401, 404, 422)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _response(stream, *, name: str, fmt: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response["X-Accel-Buffering"] = "no"  # let nginx pass chunks on as they come
    return response


@router.get(
    "/models/{model}/saes/{sae}/export/features",
    response={200: None, **ERRORS},
    summary="Export every feature (CSV or JSON, streamed)",
)
def export_features(
    request: HttpRequest, model: str, sae: str, format: Literal["csv", "json"] = "csv"
):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    return _response(
        exports.feature_export(sae=row, fmt=format), name=f"{model}-{sae}-features", fmt=format
    )


@router.get(
    "/models/{model}/saes/{sae}/export/examples",
    response={200: None, **ERRORS},
    summary="Export every example with tokens and values (CSV or JSON, streamed)",
)
def export_examples(
    request: HttpRequest, model: str, sae: str, format: Literal["csv", "json"] = "csv"
):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    stream = exports.example_export(
        sae=row, vocab=sae_selectors.vocab_get(model=row.model), fmt=format
    )
    return _response(stream, name=f"{model}-{sae}-examples", fmt=format)
