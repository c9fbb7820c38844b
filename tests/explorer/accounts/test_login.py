"""Sign-in and sign-out pages (Django auth)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_sign_in_page_shows_a_form_with_csrf(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body and 'name="password"' in body
    assert "csrfmiddlewaretoken" in body


def test_alice_signs_in_with_her_password(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get("/api/v1/me").json() == {
        "authenticated": True,
        "username": "alice",
        "auth": "session",
    }


def test_a_wrong_password_is_refused(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_alice_signs_out_with_a_post(client, alice):
    client.force_login(alice)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/api/v1/me").json()["authenticated"] is False
