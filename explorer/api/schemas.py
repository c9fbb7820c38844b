"""Shared schema pieces of the JSON API."""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict


class StrictSchema(Schema):
    """Input schemas reject unknown fields, so a typo is an error rather than a silent default."""

    model_config = ConfigDict(extra="forbid")


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
