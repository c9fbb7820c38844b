"""GET /search: the one search box as JSON (see explorer/search/services.py for query forms)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from explorer.api.schemas import (
    RATE_LIMITED,
    QuerySchema,
    error_responses,
    rate_limited_openapi,
)
from explorer.core.clients import request_client
from explorer.search import services

router = Router(tags=["search"])
ERRORS = {**error_responses(400, 401, 404, 422, 502, 503, 504), **RATE_LIMITED}


class SearchQuery(QuerySchema):
    q: str
    model: str | None = None
    sae: str | None = None
    limit: int = Field(
        20,
        ge=1,
        le=services.MAX_LIMIT,
        description="Most hits; for `text:` searches, most hits per SAE.",
    )
    mode: Literal["auto", "index", "explanation", "token", "text"] = "auto"
    group: Literal["none", "sae"] = Field(
        "none", description="`sae`: also return the hits grouped by SAE (`groups`)."
    )


class SearchHitOut(Schema):
    model: str
    sae: str
    index: int
    explanation: str | None
    density: float | None
    max_activation: float | None
    url: str
    match: Literal["index", "explanation", "token", "text"]
    # Text searches: the feature's largest activation on the text (null for other matches).
    activation: float | None = None


class SearchGroupOut(Schema):
    model: str
    sae: str
    hook_name: str
    url: str  # the SAE's page
    items: list[SearchHitOut]


class SearchOut(Schema):
    items: list[SearchHitOut]
    # Whether explanations nearest in meaning took part: "used", "unavailable" (no worker
    # answered for the query embedding: text matches only) or "none" (not an explanation
    # search, or nothing is embedded yet); `notice` says it in words.
    semantic: Literal["used", "unavailable", "none"] = "none"
    notice: str | None = None
    # With group=sae: the items per SAE. A text search lists every SAE it ran, also one whose
    # features did not fire; other searches list the SAEs that have hits. Null otherwise.
    groups: list[SearchGroupOut] | None = None


@router.get(
    "/search",
    response={200: SearchOut, **ERRORS},
    summary="Search features",
    description="`#123` finds a feature by index, `token:bank` features peaking on a token, "
    "`text:...` the features firing most on a text (runs the model on a live worker): in the "
    "SAE given, or, with only `model`, in every SAE of that model at once (one forward pass; "
    "`limit` hits per SAE; at most EXPLORER_TEXT_SEARCH_MAX_SAES SAEs, else 400 "
    "`too_many_saes`). Without `model` it needs the explorer to hold one model; otherwise "
    "400 `choose_model`, whose error lists `models` and `choices` (each model's search URL). "
    "Anything else searches explanations, then tokens. A `text:` search not cached counts "
    "against the client's text-test limits, as POST /activations/test does (429 past them).",
    openapi_extra=rate_limited_openapi("Too many text tests at once or in this window."),
)
def search(request: HttpRequest, query: Query[SearchQuery]):
    SearchQuery.check_known(request)
    try:
        result = services.search_results(
            q=query.q,
            model_slug=query.model or None,
            sae_slug=query.sae or None,
            limit=query.limit,
            mode=query.mode,
            client=request_client(request),
        )
    except services.ModelRequired as exc:
        exc.details["choices"] = [
            {"model": m, "url": request.path + "?" + urlencode({**request.GET.dict(), "model": m})}
            for m in exc.models
        ]
        raise
    groups = None
    if query.group == "sae":
        groups = services.group_dicts(result.groups or services.group_by_sae(result.hits))
        groups = [{"items": g.pop("hits"), **g} for g in groups]
    return {
        "items": services.hit_dicts(result.hits),
        "semantic": result.semantic,
        "notice": result.notice,
        "groups": groups,
    }
