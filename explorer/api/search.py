"""GET /search: the one search box as JSON (see explorer/search/services.py for query forms)."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema

from explorer.api.schemas import error_responses
from explorer.search import services

router = Router(tags=["search"])
ERRORS = error_responses(400, 401, 404, 422, 502, 503, 504)


class SearchQuery(Schema):
    q: str
    model: str | None = None
    sae: str | None = None
    limit: int = 20
    mode: Literal["auto", "index", "explanation", "token", "text"] = "auto"


class SearchHitOut(Schema):
    model: str
    sae: str
    index: int
    explanation: str | None
    density: float | None
    max_activation: float | None
    url: str
    match: Literal["index", "explanation", "token", "text"]


class SearchOut(Schema):
    items: list[SearchHitOut]
    # Whether explanations nearest in meaning took part: "used", "unavailable" (no worker
    # answered for the query embedding: text matches only) or "none" (not an explanation
    # search, or nothing is embedded yet); `notice` says it in words.
    semantic: Literal["used", "unavailable", "none"] = "none"
    notice: str | None = None


@router.get(
    "/search",
    response={200: SearchOut, **ERRORS},
    summary="Search features",
    description="`#123` finds a feature by index, `token:bank` features peaking on a token, "
    "`text:...` the features firing most on a text (runs the model; needs model and "
    "sae); anything else searches explanations, then tokens.",
)
def search(request: HttpRequest, query: Query[SearchQuery]):
    result = services.search_results(
        q=query.q,
        model_slug=query.model or None,
        sae_slug=query.sae or None,
        limit=query.limit,
        mode=query.mode,
    )
    return {
        "items": services.hit_dicts(result.hits),
        "semantic": result.semantic,
        "notice": result.notice,
    }
