"""Writes for accounts: creating and revoking API keys."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from explorer.accounts.models import ApiKey
from explorer.core.exceptions import ApplicationError, NotFound

KEY_PREFIX = "sfe_"  # recognisable in logs and by secret scanners


def api_key_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the plain key, which is never stored.

    Raises ApplicationError for an empty or over-long name.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise ApplicationError("A key needs a name of 1 to 100 characters.", code="invalid_name")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=raw[:12], digest=api_key_digest(raw))
    return key, raw


def api_key_revoke(*, user: AbstractBaseUser, key_id: int) -> ApiKey:
    """Revoke one of `user`'s keys (idempotent). Raises NotFound for someone else's key."""
    try:
        key = ApiKey.objects.get(pk=key_id, user=user)
    except ApiKey.DoesNotExist:
        raise NotFound(f"No API key {key_id}.") from None
    if key.revoked is None:
        key.revoked = timezone.now()
        key.save(update_fields=["revoked"])
    return key
