"""Sign-in/out (Django auth views) and the API key page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from explorer.accounts import selectors, services
from explorer.accounts.permissions import writes_need_account
from explorer.core.exceptions import ApplicationError


@never_cache  # the page may show a fresh key: never store it in any cache
@login_required
@writes_need_account
def keys(request: HttpRequest) -> HttpResponse:
    """GET lists the user's keys; POST creates one and shows it once, on this response only."""
    new_key = None
    error = None
    if request.method == "POST":
        try:
            _, new_key = services.api_key_create(
                user=request.user, name=request.POST.get("name", "")
            )
        except ApplicationError as exc:
            error = exc.message
    context = {
        "keys": selectors.api_key_list(user=request.user),
        "new_key": new_key,
        "error": error,
    }
    return render(request, "accounts/keys.html", context, status=400 if error else 200)


@require_POST
@login_required
@writes_need_account
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        key = services.api_key_revoke(user=request.user, key_id=key_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked {key}.")
    return redirect("accounts:keys")
