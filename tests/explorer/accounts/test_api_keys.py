"""API keys: shown once, stored as a digest, accepted by the JSON API until revoked."""

from __future__ import annotations

import hashlib

import pytest

from explorer.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_new_key_is_shown_once_on_the_keys_page(client, alice):
    client.force_login(alice)
    created = client.post("/accounts/keys/", {"name": "laptop"})
    assert created.status_code == 200
    raw = created.context["new_key"]
    assert raw.startswith("sfe_") and raw in created.content.decode()
    assert "no-store" in created["Cache-Control"]

    assert raw not in client.get("/accounts/keys/").content.decode()


def test_only_a_digest_of_the_key_is_stored(client, alice):
    client.force_login(alice)
    raw = client.post("/accounts/keys/", {"name": "laptop"}).context["new_key"]
    key = ApiKey.objects.get(user=alice)
    assert key.digest == hashlib.sha256(raw.encode()).hexdigest()
    stored = [str(v) for v in ApiKey.objects.filter(pk=key.pk).values_list().get()]
    assert not any(raw in value for value in stored)


def test_bob_authenticates_on_me_with_his_key(client, bob_key):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {bob_key}")
    assert response.json() == {"authenticated": True, "username": "bob", "auth": "api_key"}
    assert client.get("/api/v1/me", HTTP_X_API_KEY=bob_key).json()["username"] == "bob"


def test_a_wrong_key_is_refused_with_the_error_shape(client, bob_key):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer sfe_wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_a_revoked_key_stops_working(client, bob, bob_key):
    key = ApiKey.objects.get(user=bob)
    client.force_login(bob)
    assert client.post(f"/accounts/keys/{key.pk}/revoke/").status_code == 302
    client.logout()
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {bob_key}").status_code == 401


def test_alice_cannot_revoke_bobs_key(client, alice, bob, bob_key):
    key = ApiKey.objects.get(user=bob)
    response = client.delete(
        f"/api/v1/me/api-keys/{key.pk}", HTTP_AUTHORIZATION=f"Bearer {_key_for(alice)}"
    )
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=key.pk).revoked is None


def test_bob_creates_a_key_through_the_api_and_sees_it_once(client, bob_key):
    response = client.post(
        "/api/v1/me/api-keys",
        {"name": "ci"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {bob_key}",
    )
    assert response.status_code == 201
    assert response.json()["key"].startswith("sfe_")
    listed = client.get("/api/v1/me/api-keys", HTTP_AUTHORIZATION=f"Bearer {bob_key}").json()
    assert all("key" not in item for item in listed)


def _key_for(user) -> str:
    from explorer.accounts.services import api_key_create

    return api_key_create(user=user, name="test")[1]
