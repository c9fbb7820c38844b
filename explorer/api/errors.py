"""Maps every failure of the API to {"error": {"message": ..., "code": ...}} (plus the
ApplicationError's `details`, if any)."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from explorer.core import outages
from explorer.core.exceptions import ApplicationError

logger = logging.getLogger(__name__)


def error_response(
    api: NinjaAPI,
    request: HttpRequest,
    *,
    message: str,
    code: str,
    status: int,
    details: dict | None = None,
) -> HttpResponse:
    return api.create_response(
        request, {"error": {**(details or {}), "message": message, "code": code}}, status=status
    )


def format_first_error(errors: list[dict]) -> str:
    """One readable line for the first pydantic error: `body.name: Field required`."""
    if not errors:
        return "Invalid input."
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


def install(api: NinjaAPI) -> None:
    @api.exception_handler(ApplicationError)
    def application_error(request, exc: ApplicationError):
        response = error_response(
            api,
            request,
            message=exc.message,
            code=exc.code,
            status=exc.status,
            details=exc.details,
        )
        retry_after = getattr(exc, "retry_after", None)  # a RateLimited's wait
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response

    @api.exception_handler(ValidationError)
    def validation_error(request, exc: ValidationError):
        return error_response(
            api, request, message=format_first_error(exc.errors), code="invalid", status=422
        )

    @api.exception_handler(AuthenticationError)
    def authentication_error(request, exc: AuthenticationError):
        return error_response(
            api,
            request,
            message="Sign in or send an API key (Authorization: Bearer <key>) to do this.",
            code="authentication_required",
            status=401,
        )

    @api.exception_handler(Http404)
    def not_found(request, exc: Http404):
        return error_response(
            api, request, message=str(exc) or "Not found.", code="not_found", status=404
        )

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        return error_response(
            api, request, message=str(exc), code=f"http_{exc.status_code}", status=exc.status_code
        )

    @api.exception_handler(Exception)
    def server_error(request, exc: Exception):
        service = outages.service_of(exc)
        if service is not None:  # Redis or PostgreSQL unreachable: 503, logged once
            outages.tracker.down(service, exc)
            return outages.outage_response(request, service)
        logger.exception("unhandled API error on %s %s", request.method, request.path)
        return error_response(
            api, request, message="Internal server error.", code="server_error", status=500
        )
