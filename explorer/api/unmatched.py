"""Answers for URLs under /api/v1/ that no endpoint matches, so an API client never gets the
browser's HTML pages (whose `<model>/<sae>/<index>/` patterns would otherwise catch them).

Endpoints have no trailing slash. `GET`/`HEAD` of an endpoint's URL with one redirects to the
URL without it (query string kept); any other method, or a URL that matches no endpoint, gets a
404 in the API's one error shape, naming the URL to use when there is one.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from explorer.api.api import api
from explorer.api.errors import error_response


def _endpoint_path(path: str) -> str | None:
    """`path` without its trailing slash(es) when that is an API endpoint's URL, else None."""
    bare = path.rstrip("/")
    if bare == path or not bare:
        return None
    try:
        match = resolve(bare)
    except Resolver404:
        return None
    return None if match.func is unmatched else bare


@csrf_exempt  # never a write: it only redirects or answers 404 (and API clients send no token)
def unmatched(request: HttpRequest, rest: str = "") -> HttpResponse:
    bare = _endpoint_path(request.path)
    if bare is not None and request.method in ("GET", "HEAD"):
        query = request.META.get("QUERY_STRING", "")
        return HttpResponsePermanentRedirect(f"{bare}?{query}" if query else bare)
    if bare is not None:
        message = f"API URLs have no trailing slash: {request.method} {bare}"
        return error_response(api, request, message=message, code="trailing_slash", status=404)
    message = f"No API endpoint at {request.path}; see /api/v1/docs."
    return error_response(api, request, message=message, code="not_found", status=404)
