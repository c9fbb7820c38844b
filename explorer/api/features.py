"""Features of an SAE: sorted pages (keyset cursor), one feature with its stats, its examples,
neighbours and explanations (GET), adding an explanation and voting (POST, with an account)."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from explorer.api.schemas import QuerySchema, StrictSchema, error_responses
from explorer.explanations import selectors as explanation_selectors
from explorer.explanations import services as explanation_services
from explorer.saes import selectors as sae_selectors

router = Router(tags=["features"])
ERRORS = error_responses(400, 401, 403, 404, 422)
BASE = "/models/{model}/saes/{sae}/features"


class FeatureStatsOut(Schema):
    """What a feature summary and a feature's detail both start with."""

    model: str
    sae: str
    index: int
    density: float
    max_activation: float
    mean_activation: float
    dead: bool


class FeatureSummaryOut(FeatureStatsOut):
    explanation: str | None
    url: str


class FeaturePageOut(Schema):
    items: list[FeatureSummaryOut]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last page


class FeaturePageQuery(QuerySchema):
    sort: Literal["index", "-index", "density", "-density", "max_activation", "-max_activation"] = (
        "index"
    )
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=sae_selectors.MAX_PAGE)
    dead: bool = True  # false leaves dead features out


class LogitOut(Schema):
    token_id: int
    token: str
    value: float


class NeighbourOut(Schema):
    index: int
    cosine: float


class ExplanationOut(Schema):
    id: int
    text: str
    method: str
    score: float | None
    author: str | None
    votes: int = 0


class FeatureOut(FeatureStatsOut):
    hist_edges: list[float]
    hist_counts: list[int]
    top_logits: list[LogitOut]
    bottom_logits: list[LogitOut]
    neighbours: list[NeighbourOut]
    map_x: float | None
    map_y: float | None
    explanations: list[ExplanationOut]
    url: str


class ExampleOut(Schema):
    kind: str
    quantile_index: int | None
    quantile_low: float | None
    quantile_high: float | None
    token_ids: list[int]
    tokens: list[str]
    values: list[float]
    max_value: float
    max_position: int
    document: int
    offset: int


class ExampleListOut(Schema):
    items: list[ExampleOut]


class NeighbourDetailOut(Schema):
    index: int
    cosine: float
    density: float | None
    max_activation: float | None
    explanation: str | None
    url: str


class NeighbourListOut(Schema):
    items: list[NeighbourDetailOut]


class ExplanationIn(StrictSchema):
    text: str


class VoteIn(StrictSchema):
    value: Literal[-1, 1]


class VoteOut(Schema):
    explanation: int
    value: int


@router.get(BASE, response={200: FeaturePageOut, **ERRORS}, summary="A page of an SAE's features")
def feature_page(request: HttpRequest, model: str, sae: str, query: Query[FeaturePageQuery]):
    FeaturePageQuery.check_known(request)
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    page = sae_selectors.feature_page(
        sae=row, sort=query.sort, cursor=query.cursor, limit=query.limit, include_dead=query.dead
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(
    BASE + "/{index}",
    response={200: FeatureOut, **ERRORS},
    summary="One feature with its statistics",
)
def feature_detail(request: HttpRequest, model: str, sae: str, index: int):
    return sae_selectors.feature_detail(model_slug=model, sae_slug=sae, index=index)


@router.get(
    BASE + "/{index}/examples",
    response={200: ExampleListOut, **ERRORS},
    summary="A feature's examples, tokens and per-token values",
)
def example_list(
    request: HttpRequest,
    model: str,
    sae: str,
    index: int,
    kind: Literal["top", "quantile"] | None = None,
):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    return {"items": sae_selectors.example_list(sae=row, index=index, kind=kind)}


@router.get(
    BASE + "/{index}/neighbours",
    response={200: NeighbourListOut, **ERRORS},
    summary="A feature's decoder-cosine neighbours",
)
def neighbour_list(request: HttpRequest, model: str, sae: str, index: int):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    return {"items": sae_selectors.neighbour_list(sae=row, index=index)}


@router.get(
    BASE + "/{index}/explanations",
    response={200: list[ExplanationOut], **ERRORS},
    summary="A feature's explanations, best first",
)
def explanation_list(request: HttpRequest, model: str, sae: str, index: int):
    feature = sae_selectors.feature_by_slugs(model_slug=model, sae_slug=sae, index=index)
    return explanation_selectors.explanation_dicts(feature_id=feature.pk)


@router.post(
    BASE + "/{index}/explanations",
    response={201: ExplanationOut, **ERRORS},
    summary="Add your explanation of a feature",
)
def explanation_create(
    request: HttpRequest, model: str, sae: str, index: int, payload: ExplanationIn
):
    feature = sae_selectors.feature_by_slugs(model_slug=model, sae_slug=sae, index=index)
    row = explanation_services.explanation_submit(
        feature=feature, text=payload.text, author=request.auth
    )
    return Status(
        201,
        {
            "id": row.id,
            "text": row.text,
            "method": row.method,
            "score": row.score,
            "author": request.auth.get_username(),
            "votes": 0,
        },
    )


@router.post(
    "/explanations/{explanation_id}/vote",
    response={200: VoteOut, **ERRORS},
    summary="Vote +1 or -1 on an explanation, once (409 when you already have)",
)
def explanation_vote(request: HttpRequest, explanation_id: int, payload: VoteIn):
    vote = explanation_services.vote_cast(
        user=request.auth, explanation_id=explanation_id, value=payload.value
    )
    return {"explanation": vote.explanation_id, "value": vote.value}


# Beside the POST: ninja gives each router its own URL pattern, so the same path in two
# routers would answer 405 to one of the methods.
@router.delete(
    "/explanations/{explanation_id}/vote",
    response={204: None, **ERRORS},
    summary="Retract your vote on an explanation",
)
def explanation_vote_retract(request: HttpRequest, explanation_id: int):
    explanation_services.vote_retract(user=request.auth, explanation_id=explanation_id)
    return Status(204, None)
