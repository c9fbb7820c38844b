"""Shared schema pieces of the JSON API."""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict


class StrictSchema(Schema):
    """Input schemas reject unknown fields, so a typo is an error rather than a silent default,
    and NaN or infinite numbers (which Python's JSON parser accepts), naming the field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class QuerySchema(Schema):
    """Query parameter schemas: NaN and inf are no numbers either (unknown parameters pass, as
    on any URL: a cache-buster or a tracking tag is no mistake)."""

    model_config = ConfigDict(allow_inf_nan=False)


class ErrorBody(Schema):
    message: str
    code: str


class ErrorOut(Schema):
    """The one error shape of the API: {"error": {"message": ..., "code": ...}}."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The `response` entries of an endpoint's error statuses, all in the one error shape."""
    return dict.fromkeys(statuses, ErrorOut)
