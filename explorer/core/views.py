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
    return JsonResponse(body, status=200 if healthy else 503)
