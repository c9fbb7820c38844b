"""Errors raised by services and mapped to one error shape by every interface.

The JSON API renders them as {"error": {"message": ..., "code": ...}} with `status`; the
websocket uses the same message in {"type": "error", "message": ...}.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """A problem the caller can fix; `message` is safe to show to users. `details` (JSON
    values) go into the API's error object beside message and code, e.g. the choices a
    caller has."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class PermissionDenied(ApplicationError):
    status = 403
    code = "forbidden"
