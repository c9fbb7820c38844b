"""The API is versioned in the URL and documented with OpenAPI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_docs_are_served_at_api_v1_docs(client):
    assert client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/health", "/api/v1/me"} <= set(schema["paths"])


def test_api_health_reports_the_same_as_healthz(client, redis_url):
    response = client.get("/api/v1/health")
    assert response.status_code in (200, 503)
    assert set(response.json()) == {"status", "database", "redis", "queues", "missing_queues"}
