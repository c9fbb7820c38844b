"""Feature lists: services (ownership, notes, order) and the /lists/ pages."""

from __future__ import annotations

import pytest

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.lists import selectors, services
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def features():
    return build_indexed_sae(d_sae=16).features


def test_alice_adds_features_in_order_with_notes(alice, features):
    fl = services.feature_list_create(user=alice, name=" Banks ")
    services.feature_list_add(user=alice, list_id=fl.id, feature=features[3], note="river")
    services.feature_list_add(user=alice, list_id=fl.id, feature=features[1], note="money")
    items = list(selectors.feature_list_items(feature_list=fl))
    assert fl.name == "Banks"
    assert [(i.feature.index, i.note, i.position) for i in items] == [
        (3, "river", 0),
        (1, "money", 1),
    ]


def test_adding_a_feature_again_says_it_was_there_and_updates_its_note(alice, features):
    fl = services.feature_list_create(user=alice, name="x")
    _, added = services.feature_list_add(user=alice, list_id=fl.id, feature=features[3], note="a")
    assert added
    _, added = services.feature_list_add(user=alice, list_id=fl.id, feature=features[3], note="b")
    assert not added
    assert [i.note for i in fl.items.all()] == ["b"]


def test_adding_a_feature_again_without_a_note_keeps_its_note(alice, features):
    fl = services.feature_list_create(user=alice, name="x")
    services.feature_list_add(user=alice, list_id=fl.id, feature=features[3], note="a")
    services.feature_list_add(user=alice, list_id=fl.id, feature=features[3])
    assert [i.note for i in fl.items.all()] == ["a"]


def test_moving_an_item_shifts_the_others(alice, features):
    fl = services.feature_list_create(user=alice, name="x")
    items = [
        services.feature_list_add(user=alice, list_id=fl.id, feature=features[i])[0]
        for i in (1, 2, 3)
    ]
    services.feature_list_item_update(user=alice, list_id=fl.id, item_id=items[2].id, position=0)
    assert [i.feature.index for i in selectors.feature_list_items(feature_list=fl)] == [3, 1, 2]


def test_bob_cannot_touch_alices_list(alice, bob, features):
    fl = services.feature_list_create(user=alice, name="x")
    item, _ = services.feature_list_add(user=alice, list_id=fl.id, feature=features[1])
    with pytest.raises(NotFound):
        services.feature_list_add(user=bob, list_id=fl.id, feature=features[2])
    with pytest.raises(NotFound):
        services.feature_list_remove(user=bob, list_id=fl.id, item_id=item.id)
    with pytest.raises(NotFound):
        services.feature_list_update(user=bob, list_id=fl.id, public=True)


def test_a_private_list_is_invisible_to_others_and_a_public_one_is_not(alice, bob, features):
    private = services.feature_list_create(user=alice, name="mine")
    public = services.feature_list_create(user=alice, name="ours", public=True)
    with pytest.raises(NotFound):
        selectors.feature_list_get(user=bob, list_id=private.id)
    assert selectors.feature_list_get(user=None, list_id=public.id) == public
    assert selectors.feature_list_get(user=alice, list_id=private.id) == private
    assert list(selectors.feature_list_visible(user=bob)) == [public]
    assert set(selectors.feature_list_visible(user=alice)) == {public, private}


def test_a_malformed_list_id_is_not_found(alice):
    with pytest.raises(NotFound):
        selectors.feature_list_get(user=alice, list_id="not-a-uuid")


def test_names_must_be_sensible(alice):
    with pytest.raises(ApplicationError):
        services.feature_list_create(user=alice, name="  ")
    with pytest.raises(ApplicationError):
        services.feature_list_create(user=alice, name="x" * 201)


def test_charlie_sees_public_lists_and_a_sign_in_link(client, alice, features):
    fl = services.feature_list_create(user=alice, name="Public <b>one</b>", public=True)
    services.feature_list_create(user=alice, name="Secret", public=False)
    page = client.get("/lists/").content
    assert b"Public &lt;b&gt;one&lt;/b&gt;" in page
    assert b"Secret" not in page
    assert b"Sign in" in page
    assert client.get(fl.get_absolute_url()).status_code == 200


def test_a_private_list_page_is_404_for_others(client, alice, bob):
    fl = services.feature_list_create(user=alice, name="Secret")
    client.force_login(bob)
    assert client.get(fl.get_absolute_url()).status_code == 404


def test_alice_creates_a_list_from_the_page_and_lands_on_it(client, alice):
    client.force_login(alice)
    response = client.post("/lists/", {"name": "Banks", "public": "on"})
    assert response.status_code == 302
    fl = selectors.feature_list_visible(user=alice, mine=True).get()
    assert response["Location"] == fl.get_absolute_url()
    assert fl.public


def test_charlie_cannot_create_a_list_from_the_page(client):
    response = client.post("/lists/", {"name": "Banks"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_alice_edits_a_note_and_removes_an_item_on_the_page(client, alice, features):
    fl = services.feature_list_create(user=alice, name="x")
    item, _ = services.feature_list_add(user=alice, list_id=fl.id, feature=features[3], note="old")
    client.force_login(alice)
    page = client.get(fl.get_absolute_url())
    assert b'href="/tiny/res-1/3/"' in page.content
    assert b'value="old"' in page.content
    client.post(f"/lists/{fl.id}/items/{item.id}/", {"note": "new", "action": "save"})
    item.refresh_from_db()
    assert item.note == "new"
    client.post(f"/lists/{fl.id}/items/{item.id}/", {"action": "remove"})
    assert not fl.items.exists()
