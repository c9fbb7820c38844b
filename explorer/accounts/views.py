"""Sign-up, sign-in/out (Django auth views) and the API key page."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from explorer.accounts import selectors, services
from explorer.accounts.forms import SignInForm, SignupForm
from explorer.accounts.permissions import writes_need_account
from explorer.core.exceptions import ApplicationError


def safe_next(request: HttpRequest) -> str:
    """The `next` of the request (POST, then GET) when it points into this site, else ""."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if ok else ""


class SignInView(LoginView):
    """Django's sign-in (it validates `next` the same way), throttled (429 with Retry-After once
    an account or address has failed too often), and a link to sign up."""

    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.wait is not None:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(form.wait.seconds))
        return response


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
def signup(request: HttpRequest) -> HttpResponse:
    """GET shows the form; POST creates the account, signs it in and returns to `next`.

    404 when EXPLORER_SIGNUP_OPEN is off (the sign-in page then says whom to ask)."""
    next_url = safe_next(request)
    if not settings.EXPLORER_SIGNUP_OPEN:
        return render(request, "accounts/signup_closed.html", {"next": next_url}, status=404)
    if request.user.is_authenticated:
        return redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, f"Welcome, {user.get_username()}: your account is ready.")
        return redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/signup.html", {"form": form, "next": next_url}, status=status)


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
