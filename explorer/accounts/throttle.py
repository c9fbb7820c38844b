"""Sign-in throttling: failed sign-ins are counted per account and per client address in the
cache (Redis), each count for EXPLORER_LOGIN_WINDOW_S from its first failure; past either limit a
sign-in is refused until that window ends, even with the right password, so guessing a password
costs hours rather than seconds.

Counters exist for any username, registered or not, so the answer says nothing about which
accounts exist. The limits are settings (EXPLORER_LOGIN_*, docs/configuration.md).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

KEY_PREFIX = "login-failures"


@dataclass(frozen=True)
class Wait:
    """Why a sign-in is refused now and for how long."""

    seconds: float
    scope: str  # "account" or "address"

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.seconds / 60))
        where = "for this account" if self.scope == "account" else "from your network address"
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many failed sign-ins {where}: try again in {minutes} {unit}."


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address (behind a proxy in TRUSTED_PROXIES, the forwarded one:
    explorer/core/clients.py sets REMOTE_ADDR); None without a request."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _keys(*, username: str, address: str | None) -> dict[str, str]:
    # Hashed: a username is any text up to the form's length; a key stays short and plain.
    account = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    keys = {"account": f"{KEY_PREFIX}:account:{account}"}
    if address:
        keys["address"] = f"{KEY_PREFIX}:address:{address}"
    return keys


def login_wait(*, username: str, address: str | None) -> Wait | None:
    """How long a sign-in as `username` from `address` must wait, or None when it may go on."""
    keys = _keys(username=username, address=address)
    found = cache.get_many([k for key in keys.values() for k in (key, f"{key}:until")])
    limits = {
        "account": settings.EXPLORER_LOGIN_FAILURES_PER_ACCOUNT,
        "address": settings.EXPLORER_LOGIN_FAILURES_PER_ADDRESS,
    }
    now = time.time()
    for scope, key in keys.items():
        if int(found.get(key, 0)) >= limits[scope]:
            until = float(found.get(f"{key}:until", now + settings.EXPLORER_LOGIN_WINDOW_S))
            return Wait(seconds=max(until - now, 1.0), scope=scope)
    return None


def login_failed(*, username: str, address: str | None) -> None:
    """Count one failed sign-in against the account and the address. A count lives for
    EXPLORER_LOGIN_WINDOW_S from its first failure (Redis INCR keeps the expiry), and
    `<key>:until` says when that is."""
    window = settings.EXPLORER_LOGIN_WINDOW_S
    for key in _keys(username=username, address=address).values():
        if cache.add(key, 0, timeout=window):
            cache.set(f"{key}:until", time.time() + window, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls: this failure starts a new count
            cache.add(key, 1, timeout=window)
