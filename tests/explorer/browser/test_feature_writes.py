"""The feature page's write actions as rendered: explanations (write, edit one's own, ask the
LLM explainer), votes and lists for signed-in readers; sign in / sign up links otherwise."""

from __future__ import annotations

import pytest

from explorer.explanations.services import explanation_create

pytestmark = pytest.mark.django_db

EXPLAIN = "/api/v1/models/tiny/saes/res-1/features/3/explain"


def page(client) -> str:
    return client.get("/tiny/res-1/3/").content.decode()


def test_signed_out_readers_get_sign_in_and_sign_up_links_back_to_the_feature(client, indexed):
    body = page(client)
    assert 'href="/accounts/login/?next=/tiny/res-1/3/"' in body
    assert 'href="/accounts/signup/?next=/tiny/res-1/3/"' in body
    assert "to write an explanation or vote" in body
    assert "to add this feature to a list" in body


def test_with_sign_up_closed_only_the_sign_in_link_is_offered(client, indexed, settings):
    settings.EXPLORER_SIGNUP_OPEN = False
    body = page(client)
    assert "/accounts/signup/" not in body
    assert 'href="/accounts/login/?next=/tiny/res-1/3/"' in body


def test_alice_can_edit_her_own_explanation_but_not_others(client, indexed, alice, bob):
    feature = indexed.features[3]
    mine = explanation_create(feature=feature, text="mine", method="human", author=alice)
    theirs = explanation_create(feature=feature, text="theirs", method="human", author=bob)
    client.force_login(alice)
    body = page(client)
    assert f'data-enhance="edit-explanation" data-url="/api/v1/explanations/{mine.pk}"' in body
    assert body.count('data-enhance="edit-explanation"') == 1
    assert f'data-url="/api/v1/explanations/{theirs.pk}"' not in body


def test_the_llm_explainer_is_offered_when_an_endpoint_is_configured(
    client, indexed, alice, settings
):
    settings.EXPLAINER_BASE_URL = "http://127.0.0.1:9/v1"
    settings.EXPLAINER_MODEL = "judge-1"
    client.force_login(alice)
    body = page(client)
    assert f'data-enhance="llm-explain" data-url="{EXPLAIN}"' in body
    assert "Explain with judge-1" in body


def test_without_an_endpoint_there_is_no_llm_button(client, indexed, alice, settings):
    settings.EXPLAINER_BASE_URL = None
    client.force_login(alice)
    assert 'data-enhance="llm-explain"' not in page(client)


def test_a_new_reader_can_add_to_a_new_list_from_the_feature_page(client, indexed, alice):
    client.force_login(alice)
    body = page(client)
    assert 'data-enhance="add-to-list"' in body
    assert '<option value="">New list…</option>' in body


def test_the_context_width_carries_over_to_the_previous_and_next_links(client, indexed):
    body = client.get("/tiny/res-1/3/?ctx=5").content.decode()
    assert 'href="/tiny/res-1/2/?ctx=5"' in body and 'href="/tiny/res-1/4/?ctx=5"' in body
    assert 'href="/tiny/res-1/random/?ctx=5"' in body
    assert 'href="/tiny/res-1/4/"' in page(client)
