"""Pages and probes of the core app; thin: they call selectors and render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from explorer.core.health import health_report


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with the report when database, Redis and the required queues are up, else 503."""
    body, healthy = health_report()
    response = JsonResponse(body, status=200 if healthy else 503)
    # A 503 here is the answer to the probe, not a server error: keep it out of the error log.
    response._has_been_logged = True
    return response
