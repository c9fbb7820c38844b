"""Fixtures for the web app's tests: named actors (STYLE.md tests §3)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _static_collected(collected_static):
    """Every page links the built frontend through hashed static names, as in production."""


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production's HTTPS redirect is tested via
    check --deploy."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def alice(django_user_model):
    """alice has an account and signs in with a password."""
    return django_user_model.objects.create_user(
        "alice", "alice@example.org", "correct horse battery"
    )


@pytest.fixture
def bob(django_user_model):
    """bob uses the JSON API with an API key."""
    return django_user_model.objects.create_user("bob", "bob@example.org", "another good password")


@pytest.fixture
def bob_key(bob) -> str:
    from explorer.accounts.services import api_key_create

    _, raw = api_key_create(user=bob, name="bob's laptop")
    return raw
