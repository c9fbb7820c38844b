"""A NUL character anywhere in a request (path, query parameter, form field, JSON body) is a 400
naming the field, never a server error: the API's error shape under /api/, the 400 page
elsewhere."""

from __future__ import annotations

import pytest

from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=32)


def test_the_api_refuses_a_nul_in_a_query_parameter_by_name(client, indexed):
    response = client.get("/api/v1/search?q=x%00y")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "q contains a NUL character, which is not allowed.",
            "code": "bad_character",
        }
    }


def test_a_page_refuses_a_nul_in_a_query_parameter_with_the_400_page(client, indexed):
    response = client.get("/tiny/res-1/?q=%00")
    assert response.status_code == 400
    body = response.content.decode()
    assert '<p class="form-error" role="alert">q contains a NUL character' in body
    assert "<title>400 · SAE Feature Explorer</title>" in body  # the app's page, with its header


def test_a_nul_in_a_parameter_name_is_refused(client, indexed):
    response = client.get("/api/v1/models?a%00b=1")
    assert response.status_code == 400
    assert "a query parameter name contains a NUL character" in response.json()["error"]["message"]


def test_a_nul_in_the_path_is_refused(client, indexed):
    response = client.get("/tiny/res%00-1/")
    assert response.status_code == 400
    assert "the URL path contains a NUL character" in response.content.decode()


def test_a_nul_in_a_form_field_is_refused(client, alice):
    response = client.post("/accounts/login/", {"username": "ali\x00ce", "password": "x"})
    assert response.status_code == 400
    assert "username contains a NUL character" in response.content.decode()


def test_a_nul_in_a_json_body_is_refused_by_its_path(client, bob_key):
    response = client.post(
        "/api/v1/lists",
        '{"name": "bad\\u0000name"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "body.name contains a NUL character, which is not allowed.",
        "code": "bad_character",
    }


def test_a_deeply_nested_json_body_is_refused(client, bob_key):
    response = client.post(
        "/api/v1/lists",
        '{"name": "x", "description": ' + "[" * 40 + "]" * 40 + "}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_deep"
    response = client.post("/api/v1/steer", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert "nests deeper than" in response.json()["error"]["message"]


def test_a_body_that_is_not_json_is_left_to_the_endpoint(client, bob_key):
    response = client.post(
        "/api/v1/lists",
        "{nope",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Cannot parse request body"


def test_a_body_over_the_size_limit_is_a_413_in_the_error_shape(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/api/v1/steer", {"prompt": "x" * 2000}, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "message": "The request body is over 1,000 bytes.",
        "code": "too_large",
    }


def test_too_many_parameters_is_a_400_in_the_error_shape(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = client.get("/api/v1/models?" + "&".join(f"p{i}=1" for i in range(20)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_fields"


def test_ordinary_requests_pass(client, indexed):
    assert client.get("/api/v1/search?q=river+bank").status_code == 200
    assert client.get("/tiny/res-1/?q=caf%C3%A9").status_code == 200
