"""Content-Security-Policy: on every rendered response, strict for scripts, and framing denied
except for the embed (tested with the real pages in tests/e2e, where Chromium enforces it)."""

from __future__ import annotations

import re

import pytest

from explorer.core.csp import csp_header_value
from tests.helpers import REPO

SITE_POLICY_PARTS = (
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
)
TEMPLATES = sorted(REPO.glob("explorer/*/templates/**/*.html"))
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def test_a_policy_is_written_directive_by_directive():
    policy = {"script-src": ["'self'"], "img-src": ["'self'", "data:"], "sandbox": []}
    assert csp_header_value(policy) == "script-src 'self'; img-src 'self' data:; sandbox"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_template_has_an_inline_script_or_event_handler(template):
    text = template.read_text()
    for tag in SCRIPT_TAG.findall(text):
        assert " src=" in tag or 'type="application/json"' in tag, tag
    assert not EVENT_HANDLER.search(text), EVENT_HANDLER.search(text).group(0)
    assert "javascript:" not in text.lower()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/no/such/page/", "/api/v1/models"])
def test_every_response_carries_the_policy_and_denies_framing(client, path):
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    for part in SITE_POLICY_PARTS:
        assert part in policy
    assert "'unsafe-eval'" not in policy
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_the_api_docs_run_swagger_from_our_own_static_files(client):
    response = client.get("/api/v1/docs")
    body = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    sources = re.findall(r'<script src="([^"]+)"', body)
    assert sources and all(src.startswith("/static/ninja/") for src in sources), sources
    assert "cdn." not in body
    for tag in SCRIPT_TAG.findall(body):
        assert " src=" in tag or 'type="application/json"' in tag, tag
