"""Self-service sign-up, the setting that closes it, and `next` after sign-in and sign-up."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db

GOOD = {
    "username": "dora",
    "password1": "a long new passphrase",
    "password2": "a long new passphrase",
}


def test_the_sign_up_page_shows_a_form_with_csrf_and_an_optional_email(client):
    body = client.get("/accounts/signup/").content.decode()
    assert 'name="username"' in body and 'name="password1"' in body
    assert 'name="email"' in body and "(optional)" in body
    assert "csrfmiddlewaretoken" in body


def test_dora_signs_up_and_is_signed_in(client):
    response = client.post("/accounts/signup/", GOOD)
    assert response.status_code == 302 and response["Location"] == "/"
    assert User.objects.get(username="dora").email == ""
    assert client.get("/api/v1/me").json()["username"] == "dora"


def test_sign_up_returns_to_the_page_in_next(client):
    response = client.post("/accounts/signup/", {**GOOD, "next": "/tiny/res-1/3/?ctx=5"})
    assert response["Location"] == "/tiny/res-1/3/?ctx=5"


@pytest.mark.parametrize(
    "bad_next", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "\\\\evil"]
)
def test_sign_up_ignores_a_next_that_leaves_the_site(client, bad_next):
    response = client.post("/accounts/signup/", {**GOOD, "next": bad_next})
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize("bad_next", ["https://evil.example/", "//evil.example/x"])
def test_sign_in_ignores_a_next_that_leaves_the_site(client, alice, bad_next):
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "correct horse battery", "next": bad_next},
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_sign_in_returns_to_the_page_in_next(client, alice):
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "correct horse battery", "next": "/lists/"},
    )
    assert response["Location"] == "/lists/"


def test_the_sign_up_page_keeps_a_safe_next_and_drops_an_unsafe_one(client):
    assert 'value="/lists/"' in client.get("/accounts/signup/?next=/lists/").content.decode()
    body = client.get("/accounts/signup/?next=https://evil.example/").content.decode()
    assert 'name="next" value=""' in body and "evil.example" not in body


def test_a_weak_password_is_refused_naming_the_field_and_creates_nothing(client):
    response = client.post(
        "/accounts/signup/", {"username": "dora", "password1": "12345678", "password2": "12345678"}
    )
    assert response.status_code == 400
    assert "too common" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_a_taken_username_is_refused(client, alice):
    response = client.post("/accounts/signup/", {**GOOD, "username": "alice"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert User.objects.filter(username="alice").count() == 1


def test_closed_sign_up_refuses_the_form_and_creates_nothing(client, settings):
    settings.EXPLORER_SIGNUP_OPEN = False
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", GOOD).status_code == 404
    assert not User.objects.filter(username="dora").exists()


def test_with_sign_up_closed_the_sign_in_page_says_whom_to_ask(client, settings):
    settings.EXPLORER_SIGNUP_OPEN = False
    body = client.get("/accounts/login/").content.decode()
    assert "Ask its administrator" in body and "createsuperuser" in body
    assert "/accounts/signup/" not in body


def test_with_sign_up_open_the_sign_in_page_links_to_it_keeping_next(client):
    body = client.get("/accounts/login/?next=/lists/").content.decode()
    assert 'href="/accounts/signup/?next=/lists/"' in body


def test_pages_that_need_an_account_link_to_sign_in_and_sign_up_with_next(client):
    body = client.get("/lists/").content.decode()
    assert 'href="/accounts/login/?next=/lists/"' in body
    assert 'href="/accounts/signup/?next=/lists/"' in body
