"""Content-Security-Policy on every response the app renders (settings.SECURE_CSP).

Scripts come from this origin only: no inline script, no inline event handler, no eval. Pages
pass data to scripts in `<script type="application/json">` blocks (json_script), which the
browser never executes, and the API docs load Swagger UI from django-ninja's static files.
Framing is denied (`frame-ancestors 'none'`, with X-Frame-Options DENY beside it) except for a
response marked `xframe_options_exempt` (the feature embed), whose frame-ancestors come from
settings.CSP_EMBED_FRAME_ANCESTORS.

Django 5.2 has no CSP of its own. Django 6's django.middleware.csp reads a setting of the same
name and shape (directive -> sources), so an upgrade can swap that middleware in for this one.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


def csp_header_value(policy: dict[str, list[str]]) -> str:
    """`{"script-src": ["'self'"], "upgrade-insecure-requests": []}` ->
    `script-src 'self'; upgrade-insecure-requests`."""
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


def csp_for(response: HttpResponse) -> str:
    """The policy of `response`: the site's, with the embed's frame-ancestors if framable."""
    policy = dict(settings.SECURE_CSP)
    if getattr(response, "xframe_options_exempt", False):
        policy["frame-ancestors"] = list(settings.CSP_EMBED_FRAME_ANCESTORS)
    return csp_header_value(policy)


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds the header to every response that has none yet (a view may set its own)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if HEADER not in response:
            response[HEADER] = csp_for(response)
        return response
