"""Feature lists: GET/POST /lists, GET/PATCH/DELETE /lists/{id}, POST /lists/{id}/items,
PATCH/DELETE /lists/{id}/items/{item_id}. Public lists are readable by everyone; private ones
by their owner only (others get 404)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from explorer.api.schemas import StrictSchema, error_responses
from explorer.lists import selectors, services
from explorer.saes import selectors as sae_selectors

router = Router(tags=["lists"])
ERRORS = error_responses(400, 401, 403, 404, 422)


class ListIn(StrictSchema):
    name: str
    public: bool = False
    description: str = ""


class ListPatchIn(StrictSchema):
    name: str | None = None
    public: bool | None = None
    description: str | None = None


class ItemIn(StrictSchema):
    model: str
    sae: str
    index: int
    note: str = ""


class ItemPatchIn(StrictSchema):
    note: str | None = None
    position: int | None = None


class ListOut(Schema):
    id: uuid.UUID
    name: str
    description: str
    public: bool
    owner: str
    n_items: int
    created: datetime
    updated: datetime
    url: str


class ItemOut(Schema):
    id: int
    model: str
    sae: str
    index: int
    note: str
    position: int
    explanation: str | None = None
    density: float | None = None
    max_activation: float | None = None
    url: str
    already_listed: bool = Field(
        False, description="True when the feature was on the list already (nothing added)."
    )


class ListDetailOut(ListOut):
    items: list[ItemOut]


@router.get("/lists", response={200: list[ListOut], **ERRORS}, summary="Public lists and yours")
def list_index(request: HttpRequest, mine: bool = False):
    return [
        selectors.feature_list_dict(fl)
        for fl in selectors.feature_list_visible(user=request.auth, mine=mine)[:500]
    ]


@router.post("/lists", response={201: ListOut, **ERRORS}, summary="Create a list")
def list_create(request: HttpRequest, payload: ListIn):
    fl = services.feature_list_create(
        user=request.auth, name=payload.name, public=payload.public, description=payload.description
    )
    return Status(201, selectors.feature_list_dict(fl, 0))


@router.get(
    "/lists/{list_id}", response={200: ListDetailOut, **ERRORS}, summary="A list and its features"
)
def list_get(request: HttpRequest, list_id: str):
    return selectors.feature_list_detail(
        selectors.feature_list_get(user=request.auth, list_id=list_id)
    )


@router.patch(
    "/lists/{list_id}",
    response={200: ListDetailOut, **ERRORS},
    summary="Rename or (un)publish a list",
)
def list_update(request: HttpRequest, list_id: str, payload: ListPatchIn):
    fl = services.feature_list_update(
        user=request.auth,
        list_id=list_id,
        name=payload.name,
        public=payload.public,
        description=payload.description,
    )
    return selectors.feature_list_detail(fl)


@router.delete("/lists/{list_id}", response={204: None, **ERRORS}, summary="Delete a list")
def list_delete(request: HttpRequest, list_id: str):
    services.feature_list_delete(user=request.auth, list_id=list_id)
    return Status(204, None)


@router.post(
    "/lists/{list_id}/items",
    response={201: ItemOut, 200: ItemOut, **ERRORS},
    summary="Add a feature to a list (or change its note)",
    description="201 with the new item; 200 with `already_listed: true` when the feature was "
    "on the list already: nothing is added, and a non-empty note replaces its note.",
)
def item_add(request: HttpRequest, list_id: str, payload: ItemIn):
    sae = sae_selectors.sae_get(model_slug=payload.model, slug=payload.sae)
    feature = sae_selectors.feature_get(sae=sae, index=payload.index)
    item, added = services.feature_list_add(
        user=request.auth, list_id=list_id, feature=feature, note=payload.note
    )
    item.feature.sae = sae
    return Status(
        201 if added else 200,
        {**selectors.feature_list_item_dict(item), "already_listed": not added},
    )


@router.patch(
    "/lists/{list_id}/items/{item_id}",
    response={200: ItemOut, **ERRORS},
    summary="Edit a list item's note or position",
)
def item_update(request: HttpRequest, list_id: str, item_id: int, payload: ItemPatchIn):
    item = services.feature_list_item_update(
        user=request.auth,
        list_id=list_id,
        item_id=item_id,
        note=payload.note,
        position=payload.position,
    )
    return selectors.feature_list_item_dict(item)


@router.delete(
    "/lists/{list_id}/items/{item_id}",
    response={204: None, **ERRORS},
    summary="Remove a feature from a list",
)
def item_remove(request: HttpRequest, list_id: str, item_id: int):
    services.feature_list_remove(user=request.auth, list_id=list_id, item_id=item_id)
    return Status(204, None)
