"""Reads for feature lists. A private list is visible to its owner only."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from explorer.core.exceptions import NotFound
from explorer.explanations.selectors import best_explanations
from explorer.lists.models import FeatureList, FeatureListItem


def _user_id(user: AbstractBaseUser | AnonymousUser | object | None) -> int | None:
    return user.pk if getattr(user, "is_authenticated", False) else None


def feature_list_visible(
    *, user: AbstractBaseUser | AnonymousUser | object | None, mine: bool = False
) -> QuerySet[FeatureList]:
    """Public lists and `user`'s own (only their own when `mine`), newest change first, with
    `n_items`."""
    uid = _user_id(user)
    if mine:
        qs = FeatureList.objects.filter(owner_id=uid) if uid else FeatureList.objects.none()
    else:
        qs = (
            FeatureList.objects.filter(Q(public=True) | Q(owner_id=uid))
            if uid
            else FeatureList.objects.filter(public=True)
        )
    return qs.select_related("owner").annotate(n_items=Count("items")).order_by("-updated")


def feature_list_get(
    *, user: AbstractBaseUser | AnonymousUser | object | None, list_id: uuid.UUID | str
) -> FeatureList:
    """The list if it is public or `user`'s. Raises NotFound otherwise (also for a malformed id)."""
    uid = _user_id(user)
    visible = Q(public=True) | Q(owner_id=uid) if uid else Q(public=True)
    try:
        return FeatureList.objects.select_related("owner").get(visible, pk=parse_list_id(list_id))
    except FeatureList.DoesNotExist:
        raise NotFound(f"No list {list_id}.") from None


def parse_list_id(list_id: uuid.UUID | str) -> uuid.UUID:
    """The UUID of a list id. Raises NotFound for a malformed one (it names no list)."""
    if isinstance(list_id, uuid.UUID):
        return list_id
    try:
        return uuid.UUID(str(list_id))
    except ValueError:
        raise NotFound(f"No list {list_id}.") from None


def feature_list_items(*, feature_list: FeatureList) -> QuerySet[FeatureListItem]:
    """Items in order, each with its feature, SAE and model loaded (vocab left out)."""
    return (
        feature_list.items.select_related("feature__sae__model")
        .defer("feature__sae__model__vocab", "feature__hist_edges", "feature__hist_counts")
        .order_by("position", "id")
    )


def feature_list_dict(fl: FeatureList, n_items: int | None = None) -> dict:
    """A list's fields for the API and pages (`n_items` from the annotation when not given)."""
    return {
        "id": fl.id,
        "name": fl.name,
        "description": fl.description,
        "public": fl.public,
        "owner": fl.owner.get_username(),
        "created": fl.created,
        "updated": fl.updated,
        "n_items": n_items if n_items is not None else getattr(fl, "n_items", 0),
        "url": fl.get_absolute_url(),
    }


def feature_list_item_dict(item: FeatureListItem, explanation: str | None = None) -> dict:
    f = item.feature
    m, s = f.sae.model.slug, f.sae.slug
    return {
        "id": item.id,
        "model": m,
        "sae": s,
        "index": f.index,
        "note": item.note,
        "position": item.position,
        "explanation": explanation,
        "density": f.density,
        "max_activation": f.max_activation,
        "url": f"/{m}/{s}/{f.index}/",
    }


def feature_list_detail(fl: FeatureList) -> dict:
    """The list with its items in order, each with its feature's stats and best explanation."""
    items = list(feature_list_items(feature_list=fl))
    best = best_explanations(feature_ids=[i.feature_id for i in items])
    return {
        **feature_list_dict(fl, len(items)),
        "items": [
            feature_list_item_dict(i, best[i.feature_id].text if i.feature_id in best else None)
            for i in items
        ],
    }
