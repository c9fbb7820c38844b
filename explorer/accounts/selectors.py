"""Reads for accounts."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from explorer.accounts.models import ApiKey
from explorer.accounts.services import api_key_digest


def api_key_list(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user)


def api_key_user(*, raw: str) -> AbstractBaseUser | None:
    """The active user owning the unrevoked key `raw`, or None. Records the last use."""
    key = (
        ApiKey.objects.select_related("user")
        .filter(digest=api_key_digest(raw), revoked__isnull=True, user__is_active=True)
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    # Throttled: one write per key per minute at most, not one per request.
    if key.last_used is None or (now - key.last_used).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used=now)
    return key.user
