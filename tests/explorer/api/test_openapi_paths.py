"""Every endpoint of the browser's API is in the OpenAPI schema behind /api/v1/docs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_documents_models_features_search_lists_activations_and_exports(client):
    paths = set(client.get("/api/v1/openapi.json").json()["paths"])
    feature = "/api/v1/models/{model}/saes/{sae}/features/{index}"
    assert {
        "/api/v1/models",
        "/api/v1/models/{model}",
        "/api/v1/models/{model}/saes",
        "/api/v1/models/{model}/saes/{sae}",
        "/api/v1/models/{model}/saes/{sae}/metrics",
        "/api/v1/models/{model}/saes/{sae}/features",
        feature,
        feature + "/examples",
        feature + "/neighbours",
        feature + "/explanations",
        "/api/v1/explanations/{explanation_id}/vote",
        "/api/v1/search",
        "/api/v1/lists",
        "/api/v1/lists/{list_id}",
        "/api/v1/lists/{list_id}/items",
        "/api/v1/lists/{list_id}/items/{item_id}",
        "/api/v1/activations/test",
        "/api/v1/models/{model}/saes/{sae}/export/features",
        "/api/v1/models/{model}/saes/{sae}/export/examples",
    } <= paths
