"""The one rule for every interface: reads are open to everyone, writes need an account.

- JSON API: `ReadOpenWriteAccount` is the NinjaAPI's default auth (explorer/api/api.py), so a
  new endpoint is covered without doing anything. It accepts an API key (`Authorization:
  Bearer <key>` or `X-API-Key: <key>`) or the session (with the CSRF check for writes).
- HTML views: decorate with `writes_need_account`.

`OpenToAll` is the one exception, for endpoints that compute rather than write, where a POST
only carries a request body: `POST /api/v1/steer` is open to anonymous users, as steering over
the websocket is, and rate-limited per client instead.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from ninja.security.base import AuthBase

from explorer.core.exceptions import ApplicationError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(ApplicationError):
    status = 403
    code = "csrf_failed"


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check (token, origin, referer), answering its reason for refusing instead
    of Django's 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_view(request: HttpRequest) -> None:  # the view the check is for: not csrf_exempt
    return None


def csrf_check(request: HttpRequest) -> None:
    """Raises CsrfFailed (403) naming Django's reason when a session request fails CSRF."""
    check = _CsrfCheck(_csrf_view)
    request.csrf_processing_done = False  # ninja's views are csrf_exempt: nothing checked yet
    check.process_request(request)
    reason = check.process_view(request, _csrf_view, (), {})
    if reason is not None:
        raise CsrfFailed(
            f"CSRF check failed ({str(reason).rstrip('.')}): a signed-in write needs the "
            "X-CSRFToken header set to the csrftoken cookie's value; scripts use an API key "
            "(Authorization: Bearer <key>) instead."
        )


class Anonymous:
    """request.auth for anonymous reads (truthy, so ninja lets the request through)."""

    is_authenticated = False

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "Anonymous"


ANONYMOUS = Anonymous()


def api_key_from_request(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


class ReadOpenWriteAccount(AuthBase):
    """Ninja auth: the user for a valid key/session, ANONYMOUS for anonymous reads, else None
    (-> 401). A wrong API key is rejected even on reads, so typos do not look anonymous; a
    session write failing the CSRF check raises CsrfFailed (403). API keys need no CSRF token:
    a browser never sends one by itself."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "X-API-Key"
    open_methods = SAFE_METHODS  # what anonymous users may do (and sessions without CSRF)

    def __call__(self, request: HttpRequest):
        from explorer.accounts.selectors import api_key_user

        raw = api_key_from_request(request)
        if raw is not None:
            user = api_key_user(raw=raw)
            if user is not None:
                request.user = user
                request.auth_method = "api_key"
            return user
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if request.method not in self.open_methods:
                csrf_check(request)
            request.auth_method = "session"
            return user
        if request.method in self.open_methods:
            request.auth_method = None
            return ANONYMOUS
        return None


class OpenToAll(ReadOpenWriteAccount):
    """Every method is open, as reads are: anonymous users get ANONYMOUS, an API key or a
    session its user (a wrong key is still rejected). No CSRF check: a forged request can do
    nothing an anonymous one cannot.

    Async (for async endpoints): a request with neither a key nor a session cookie, the usual
    one from a script, is answered without a trip to a thread for the database."""

    open_methods = SAFE_METHODS | {"POST"}

    async def __call__(self, request: HttpRequest):
        from asgiref.sync import sync_to_async
        from django.conf import settings

        if api_key_from_request(request) is None and not request.COOKIES.get(
            settings.SESSION_COOKIE_NAME
        ):
            request.auth_method = None
            return ANONYMOUS
        return await sync_to_async(super().__call__)(request)


def writes_need_account(view):
    """Django view decorator: unsafe methods from anonymous users go to the sign-in page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method not in SAFE_METHODS and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper
