"""The lists API: POST /lists, POST /lists/{id}/items, PATCH and DELETE, visibility."""

from __future__ import annotations

import pytest

from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=16)


def post(client, path, body, key=None, method="post"):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return getattr(client, method)(path, body, content_type="application/json", **extra)


def test_bob_creates_a_list_adds_a_feature_and_reads_it_back(client, indexed, bob_key):
    created = post(client, "/api/v1/lists", {"name": "Banks", "public": True}, bob_key)
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["public"], body["owner"], body["n_items"]) == (
        "Banks",
        True,
        "bob",
        0,
    )
    assert body["url"] == f"/lists/{body['id']}/"
    item = post(
        client,
        f"/api/v1/lists/{body['id']}/items",
        {"model": "tiny", "sae": "res-1", "index": 3, "note": "river"},
        bob_key,
    )
    assert item.status_code == 201
    assert item.json()["url"] == "/tiny/res-1/3/"
    assert item.json()["already_listed"] is False
    detail = client.get(f"/api/v1/lists/{body['id']}").json()  # anonymous: it is public
    assert [(i["index"], i["note"]) for i in detail["items"]] == [(3, "river")]


def test_adding_a_feature_already_on_the_list_says_so_and_adds_nothing(client, indexed, bob_key):
    list_id = post(client, "/api/v1/lists", {"name": "Banks"}, bob_key).json()["id"]
    url = f"/api/v1/lists/{list_id}/items"
    feature = {"model": "tiny", "sae": "res-1", "index": 3}
    assert post(client, url, {**feature, "note": "river"}, bob_key).status_code == 201
    again = post(client, url, feature, bob_key)
    assert again.status_code == 200
    assert again.json()["already_listed"] is True and again.json()["note"] == "river"
    assert (
        len(
            client.get(f"/api/v1/lists/{list_id}", HTTP_AUTHORIZATION=f"Bearer {bob_key}").json()[
                "items"
            ]
        )
        == 1
    )


def test_editing_and_removing_items(client, indexed, bob_key):
    list_id = post(client, "/api/v1/lists", {"name": "x"}, bob_key).json()["id"]
    item_id = post(
        client,
        f"/api/v1/lists/{list_id}/items",
        {"model": "tiny", "sae": "res-1", "index": 3},
        bob_key,
    ).json()["id"]
    patched = post(
        client, f"/api/v1/lists/{list_id}/items/{item_id}", {"note": "edited"}, bob_key, "patch"
    )
    assert patched.json()["note"] == "edited"
    renamed = post(
        client, f"/api/v1/lists/{list_id}", {"name": "y", "public": True}, bob_key, "patch"
    )
    assert (renamed.json()["name"], renamed.json()["public"]) == ("y", True)
    removed = client.delete(
        f"/api/v1/lists/{list_id}/items/{item_id}", HTTP_AUTHORIZATION=f"Bearer {bob_key}"
    )
    assert removed.status_code == 204
    assert client.get(f"/api/v1/lists/{list_id}").json()["items"] == []
    assert (
        client.delete(
            f"/api/v1/lists/{list_id}", HTTP_AUTHORIZATION=f"Bearer {bob_key}"
        ).status_code
        == 204
    )
    assert client.get(f"/api/v1/lists/{list_id}").status_code == 404


def test_a_private_list_is_404_to_charlie_and_listed_for_bob(client, indexed, bob_key):
    list_id = post(client, "/api/v1/lists", {"name": "secret"}, bob_key).json()["id"]
    assert client.get(f"/api/v1/lists/{list_id}").status_code == 404
    assert client.get("/api/v1/lists").json() == []
    mine = client.get("/api/v1/lists?mine=true", HTTP_AUTHORIZATION=f"Bearer {bob_key}").json()
    assert [m["id"] for m in mine] == [list_id]


def test_charlie_cannot_create_lists(client, indexed):
    assert post(client, "/api/v1/lists", {"name": "x"}).status_code == 401


def test_adding_an_unknown_feature_is_a_json_404(client, indexed, bob_key):
    list_id = post(client, "/api/v1/lists", {"name": "x"}, bob_key).json()["id"]
    response = post(
        client,
        f"/api/v1/lists/{list_id}/items",
        {"model": "tiny", "sae": "res-1", "index": 99},
        bob_key,
    )
    assert response.status_code == 404
    assert "error" in response.json()


def test_unknown_fields_are_rejected(client, indexed, bob_key):
    response = post(client, "/api/v1/lists", {"name": "x", "colour": "red"}, bob_key)
    assert response.status_code == 422
