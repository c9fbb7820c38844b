"""Refuses a request whose path, query parameters, form fields or JSON body hold text that cannot
be stored (explorer/core/untrusted.py), before any view or database query sees it.

The answer is a 400 naming the field (413 for a body over Django's size limit): the API's error
shape under /api/, the 400 page elsewhere.
Websocket messages are checked by their consumers, with the same messages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.deprecation import MiddlewareMixin

from explorer.core.untrusted import BadInput, check_json, check_text, json_loads

API_PREFIX = "/api/"


def _is_json(request: HttpRequest) -> bool:
    content_type = request.content_type or ""
    return content_type == "application/json" or content_type.endswith("+json")


def check_request(request: HttpRequest) -> None:
    """Raises BadInput naming the first field that holds text no field may hold, or saying
    which of Django's size limits the request is over."""
    try:
        _check_fields(request)
    except RequestDataTooBig:
        raise BadInput(
            f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.",
            code="too_large",
            status=413,
        ) from None
    except TooManyFieldsSent:
        raise BadInput(
            f"The request has over {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} parameters.",
            code="too_many_fields",
        ) from None


def _check_fields(request: HttpRequest) -> None:
    check_text(request.path_info, "the URL path")
    sources = [("query parameter", request.GET)]
    if request.method == "POST" and not _is_json(request):
        sources.append(("form field", request.POST))
    for kind, data in sources:
        for name, values in data.lists():
            check_text(name, f"a {kind} name")
            for value in values:
                check_text(value, name)
    if _is_json(request) and request.body:
        try:
            body = json_loads(request.body, what="the request body")
        except BadInput as exc:
            if exc.code != "invalid_json":  # the view answers that one in its own words
                raise
        else:
            check_json(body, "body")


def bad_request(request: HttpRequest, exc: BadInput) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        body = {"error": {"message": exc.message, "code": exc.code}}
        return JsonResponse(body, status=exc.status)
    return render(request, "400.html", {"message": exc.message}, status=exc.status)


class UntrustedInputMiddleware(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        try:
            check_request(request)
        except BadInput as exc:
            return bad_request(request, exc)
        return None
