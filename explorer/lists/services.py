"""Writes for feature lists. Every function checks that `user` owns the list."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.lists.models import FeatureList, FeatureListItem
from explorer.lists.selectors import parse_list_id
from explorer.saes.models import Feature

MAX_NAME_CHARS = 200
MAX_NOTE_CHARS = 5000
MAX_ITEMS = 10_000  # a list is for reading; bigger collections belong in an export


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ApplicationError(
            f"A list needs a name of 1 to {MAX_NAME_CHARS} characters.", code="invalid_name"
        )
    return name


def _note(note: str) -> str:
    if len(note) > MAX_NOTE_CHARS:
        raise ApplicationError(
            f"A note is at most {MAX_NOTE_CHARS} characters.", code="invalid_note"
        )
    return note.strip()


def owned_list(
    *, user: AbstractBaseUser, list_id: uuid.UUID | str, lock: bool = False
) -> FeatureList:
    """`user`'s list `list_id`. Raises NotFound for an unknown list or someone else's (so a
    private list's existence is not revealed)."""
    qs = FeatureList.objects.select_for_update() if lock else FeatureList.objects
    try:
        return qs.get(pk=parse_list_id(list_id), owner_id=user.pk)
    except FeatureList.DoesNotExist:
        raise NotFound(f"No list {list_id} of yours.") from None


def feature_list_create(
    *, user: AbstractBaseUser, name: str, public: bool = False, description: str = ""
) -> FeatureList:
    """Raises ApplicationError (invalid_name) for an empty or over-long name."""
    return FeatureList.objects.create(
        owner=user, name=_name(name), public=public, description=_note(description)
    )


def feature_list_update(
    *,
    user: AbstractBaseUser,
    list_id: uuid.UUID | str,
    name: str | None = None,
    public: bool | None = None,
    description: str | None = None,
) -> FeatureList:
    """Change the given fields (None leaves one as it is). Raises NotFound, ApplicationError."""
    fl = owned_list(user=user, list_id=list_id)
    if name is not None:
        fl.name = _name(name)
    if public is not None:
        fl.public = public
    if description is not None:
        fl.description = _note(description)
    fl.save()
    return fl


def feature_list_delete(*, user: AbstractBaseUser, list_id: uuid.UUID | str) -> None:
    owned_list(user=user, list_id=list_id).delete()


def feature_list_add(
    *, user: AbstractBaseUser, list_id: uuid.UUID | str, feature: Feature, note: str = ""
) -> tuple[FeatureListItem, bool]:
    """Append `feature` to the list, or update its note when it is already there; returns
    the item and whether it was added (False: it was already on the list).

    Raises NotFound for someone else's list, ApplicationError for a full list or long note.
    """
    note = _note(note)
    with transaction.atomic():
        fl = owned_list(user=user, list_id=list_id, lock=True)  # serialises position numbering
        existing = FeatureListItem.objects.filter(feature_list=fl, feature=feature).first()
        if existing is not None:
            if note and note != existing.note:  # an empty note keeps the one it has
                existing.note = note
                existing.save(update_fields=["note"])
            return existing, False
        count = fl.items.count()
        if count >= MAX_ITEMS:
            raise ApplicationError(f"A list holds at most {MAX_ITEMS} features.", code="list_full")
        last = fl.items.aggregate(m=Max("position"))["m"]
        try:
            item = FeatureListItem.objects.create(
                feature_list=fl,
                feature=feature,
                note=note,
                position=0 if last is None else last + 1,
            )
        except IntegrityError:  # pragma: no cover - the row lock above prevents it
            raise ApplicationError(
                "That feature is already on the list.", code="duplicate"
            ) from None
        fl.save(update_fields=["updated"])
    return item, True


def feature_list_item_update(
    *,
    user: AbstractBaseUser,
    list_id: uuid.UUID | str,
    item_id: int,
    note: str | None = None,
    position: int | None = None,
) -> FeatureListItem:
    """Edit an item's note and/or move it to `position` (0 = first; others shift).

    Raises NotFound for an unknown item or someone else's list.
    """
    with transaction.atomic():
        fl = owned_list(user=user, list_id=list_id, lock=True)
        try:
            item = fl.items.get(pk=item_id)
        except FeatureListItem.DoesNotExist:
            raise NotFound(f"No item {item_id} on this list.") from None
        if note is not None:
            item.note = _note(note)
            item.save(update_fields=["note"])
        if position is not None:
            if position < 0:
                raise ApplicationError("A position is 0 or more.", code="invalid_position")
            order = [
                i
                for i in fl.items.order_by("position", "id").values_list("id", flat=True)
                if i != item.pk
            ]
            order.insert(min(position, len(order)), item.pk)
            for pos, pk in enumerate(order):
                FeatureListItem.objects.filter(pk=pk).exclude(position=pos).update(position=pos)
            item.refresh_from_db()
        fl.save(update_fields=["updated"])
    return item


def feature_list_remove(*, user: AbstractBaseUser, list_id: uuid.UUID | str, item_id: int) -> None:
    """Raises NotFound for an unknown item or someone else's list."""
    with transaction.atomic():
        fl = owned_list(user=user, list_id=list_id, lock=True)
        deleted, _ = fl.items.filter(pk=item_id).delete()
        if not deleted:
            raise NotFound(f"No item {item_id} on this list.")
        fl.save(update_fields=["updated"])
