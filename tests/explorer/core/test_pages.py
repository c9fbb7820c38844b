"""Home page and error pages."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_home_page_loads_the_built_frontend_entry(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>SAE Feature Explorer</h1>" in body
    assert '<script type="module" src="/static/assets/' in body


def test_an_unknown_page_gets_the_404_template(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()


def test_pages_are_not_framable(client):
    assert client.get("/accounts/login/")["X-Frame-Options"] == "DENY"
