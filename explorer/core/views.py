"""Pages and probes of the core app; thin: they call selectors and render."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import requires_csrf_token
from django.views.decorators.http import require_safe

from explorer.browser import selectors as browser_selectors
from explorer.core import outages
from explorer.core.health import health_report
from explorer.showcases import selectors as showcase_selectors

HOME_SHOWCASES = 4  # "Try this" cards: one row on a desktop screen


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Steering showcases to try, models and their SAEs with feature counts, recently explained
    and random features."""
    return render(
        request,
        "core/home.html",
        {
            "showcases": showcase_selectors.home_showcases(limit=HOME_SHOWCASES),
            "models": browser_selectors.model_summaries(),
            "recent": browser_selectors.feature_cards(
                features=browser_selectors.recent_features(limit=6)
            ),
            "random": browser_selectors.feature_cards(
                features=browser_selectors.random_features(limit=6)
            ),
        },
    )


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with the report when database, Redis and the required queues are up, else 503."""
    body, healthy = health_report()
    response = JsonResponse(body, status=200 if healthy else 503)
    # A 503 here is the answer to the probe, not a server error: keep it out of the error log.
    response._has_been_logged = True
    return response


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a failure because Redis or PostgreSQL is unreachable is a 503
    (outages.outage_response), else Django's 500. Views' failures are turned into 503 earlier,
    by OutageMiddleware; this catches those raised in other middleware where the exception is
    known (under ASGI Django renders the 500 in another thread, without it)."""
    exc = sys.exc_info()[1]
    service = outages.service_of(exc)
    if service is None:
        return defaults.server_error(request)
    outages.tracker.down(service, exc)
    return outages.outage_response(request, service)
