"""Shared schema pieces of the JSON API."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Schema
from pydantic import ConfigDict

from explorer.core.exceptions import ApplicationError


class StrictSchema(Schema):
    """Input schemas reject unknown fields, so a typo is an error rather than a silent default,
    and NaN or infinite numbers (which Python's JSON parser accepts), naming the field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class QuerySchema(Schema):
    """The query parameters of a list endpoint: NaN and inf are no numbers, and `check_known`
    refuses a parameter the schema lacks, so `order=` for `sort=`, or a filter the endpoint does
    not have, is an error rather than the unsorted, unfiltered list."""

    model_config = ConfigDict(allow_inf_nan=False)

    @classmethod
    def check_known(cls, request: HttpRequest) -> None:
        """Raises ApplicationError (422, the validation errors' code) naming the first query
        parameter that is not a field of this schema."""
        unknown = sorted(set(request.GET) - set(cls.model_fields))
        if unknown:
            raise ApplicationError(
                f"query.{unknown[0]}: unknown parameter; this endpoint takes "
                f"{', '.join(cls.model_fields)}.",
                code="invalid",
                status=422,
            )


class ErrorBody(Schema):
    message: str
    code: str


class ErrorOut(Schema):
    """The one error shape of the API: {"error": {"message": ..., "code": ...}}."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The `response` entries of an endpoint's error statuses, all in the one error shape."""
    return dict.fromkeys(statuses, ErrorOut)


class RateLimitedBody(ErrorBody):
    retry_after: int  # seconds to wait, as in the Retry-After header


class RateLimitedOut(Schema):
    """A 429 (explorer/core/limits.py): the error shape, plus `retry_after`."""

    error: RateLimitedBody


RATE_LIMITED = {429: RateLimitedOut}


def rate_limited_openapi(description: str) -> dict:
    """`openapi_extra` documenting an endpoint's 429: what it limits, and Retry-After."""
    return {
        "responses": {
            429: {
                "description": description,
                "headers": {
                    "Retry-After": {
                        "description": "Seconds to wait before trying again.",
                        "schema": {"type": "integer"},
                    }
                },
            }
        }
    }
