"""Every read works anonymously; every write needs an account (JSON API and pages)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_charlie_reads_me_anonymously(client):
    assert client.get("/api/v1/me").json() == {
        "authenticated": False,
        "username": None,
        "auth": None,
    }


def test_charlie_cannot_write_through_the_api(client):
    response = client.post("/api/v1/me/api-keys", {"name": "x"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Sign in or send an API key (Authorization: Bearer <key>) to do this.",
            "code": "authentication_required",
        }
    }


def test_charlie_cannot_delete_through_the_api(client):
    assert client.delete("/api/v1/me/api-keys/1").status_code == 401


def test_charlie_is_sent_to_sign_in_for_a_page_write(client):
    response = client.post("/accounts/keys/", {"name": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_session_write_without_the_csrf_token_is_a_403_naming_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/me/api-keys", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "csrf_failed"
    assert error["message"].startswith("CSRF check failed (CSRF cookie not set)")
    assert "X-CSRFToken" in error["message"]
    assert client.delete("/api/v1/me/api-keys/1").json()["error"]["code"] == "csrf_failed"


def test_a_session_write_with_a_wrong_csrf_token_is_a_403_naming_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = "a" * 32
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN="b" * 32,
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith(
        "CSRF check failed (CSRF token from the 'X-Csrftoken' HTTP header incorrect)"
    )


def test_a_session_write_with_the_csrf_token_goes_through(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = "a" * 32
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN="a" * 32,
    )
    assert response.status_code == 201


def test_an_api_key_write_needs_no_csrf_token(bob_key):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 201


def test_unknown_fields_are_rejected_with_the_error_shape(client, bob_key):
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "x", "admin": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert "admin" in response.json()["error"]["message"]


def test_a_service_error_uses_the_error_shape(client, bob_key):
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "  "},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_name"
