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


@pytest.fixture
def throttle(settings):
    """Low limits, and no failures counted before or after (they live in the Redis cache)."""
    from django.core.cache import cache

    settings.EXPLORER_LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.EXPLORER_LOGIN_FAILURES_PER_ADDRESS = 5
    settings.EXPLORER_LOGIN_WINDOW_S = 600
    cache.clear()
    yield settings
    cache.clear()


def sign_in(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_an_account_that_failed_too_often_waits_even_with_the_right_password(
    client, alice, throttle
):
    for _ in range(3):
        assert sign_in(client, "alice", "nope").status_code == 200
    response = sign_in(client, "alice", "correct horse battery", address="10.0.0.2")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 600
    body = response.content.decode()
    assert "Too many failed sign-ins for this account: try again in " in body
    assert "did not match" not in body
    assert client.get("/api/v1/me").json()["authenticated"] is False


def test_an_address_that_failed_too_often_waits_for_every_account(client, alice, bob, throttle):
    for name in ("nobody", "someone", "anyone", "noone", "alice"):  # any username counts
        assert sign_in(client, name, "guess").status_code == 200
    response = sign_in(client, "bob", "another good password")
    assert response.status_code == 429
    assert "Too many failed sign-ins from your network address" in response.content.decode()
    # From elsewhere bob signs in: the limit is the address's, and his account's is untouched.
    assert sign_in(client, "bob", "another good password", address="10.0.0.9").status_code == 302


def test_failures_below_the_limit_do_not_stop_the_right_password(client, alice, throttle):
    for _ in range(2):
        sign_in(client, "alice", "nope")
    assert sign_in(client, "alice", "correct horse battery").status_code == 302


def test_the_admin_sign_in_counts_against_the_same_limits(client, alice, throttle):
    for _ in range(3):
        response = client.post(
            "/admin/login/", {"username": "alice", "password": "nope"}, REMOTE_ADDR="10.0.0.1"
        )
        assert response.status_code == 200
    response = client.post(
        "/admin/login/",
        {"username": "alice", "password": "correct horse battery"},
        REMOTE_ADDR="10.0.0.3",
    )
    assert "Too many failed sign-ins for this account" in response.content.decode()
    assert sign_in(client, "alice", "correct horse battery", address="10.0.0.4").status_code == 429
