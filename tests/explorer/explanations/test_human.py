"""People's explanations: write (scored at once offline), edit one's own only, vote once,
and the JSON API around them (alice signs in, bob has an API key, charlie is anonymous)."""

from __future__ import annotations

import pytest

from explorer.core.exceptions import ApplicationError, NotFound, PermissionDenied
from explorer.explanations import services
from explorer.explanations.models import ExplainJob, Explanation
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db
BASE = "/api/v1/models/tiny/saes/res-1/features"


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=24, examples_per_feature=4)


@pytest.fixture
def feature(indexed):
    return indexed.features[13]  # peaks on vocab token 13, " of"


@pytest.fixture
def auth(bob_key):
    return {"HTTP_AUTHORIZATION": f"Bearer {bob_key}"}


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_explanation_is_refused(feature, alice, text):
    with pytest.raises(ApplicationError) as err:
        services.explanation_submit(feature=feature, text=text, author=alice)
    assert err.value.code == "invalid_explanation"
    assert not Explanation.objects.exists()


def test_a_human_explanation_with_quoted_tokens_is_scored_offline_at_once(feature, alice):
    e = services.explanation_submit(feature=feature, text='the word " of"', author=alice)
    e.refresh_from_db()
    assert e.method == "human" and e.author == alice
    assert e.score_method == "detection:offline" and e.score > 0.5 and e.score_sample_size > 0


def test_a_prose_explanation_stays_unscored_offline(feature, alice):
    e = services.explanation_submit(
        feature=feature, text="prepositions in legal text", author=alice
    )
    e.refresh_from_db()
    assert (e.score, e.score_method) == (None, "")


def test_with_an_endpoint_a_human_explanation_gets_an_llm_score_job(feature, alice, settings):
    settings.EXPLAINER_BASE_URL = "http://127.0.0.1:1/v1"
    e = services.explanation_submit(feature=feature, text="prepositions", author=alice)
    job = ExplainJob.objects.get()
    assert (job.kind, job.status, job.explanation_id, job.base_url) == (
        "score",
        "queued",
        e.pk,
        "http://127.0.0.1:1/v1",
    )


def test_alice_edits_her_explanation_and_its_score_is_measured_again(feature, alice):
    e = services.explanation_submit(feature=feature, text="prose", author=alice)
    edited = services.explanation_edit(user=alice, explanation_id=e.pk, text='  " of" ')
    assert edited.text == '" of"' and edited.edited is not None
    assert Explanation.objects.get(pk=e.pk).score_method == "detection:offline"


def test_bob_cannot_edit_alices_explanation_nor_an_offline_one(feature, alice, bob):
    e = services.explanation_submit(feature=feature, text="alice's", author=alice)
    with pytest.raises(PermissionDenied):
        services.explanation_edit(user=bob, explanation_id=e.pk, text="bob's")
    offline = services.explanation_create(feature=feature, text="label", method="offline")
    with pytest.raises(PermissionDenied):
        services.explanation_edit(user=alice, explanation_id=offline.pk, text="mine now")
    with pytest.raises(NotFound):
        services.explanation_edit(user=alice, explanation_id=e.pk + 999, text="x")


def test_an_edit_to_empty_text_is_refused(feature, alice):
    e = services.explanation_submit(feature=feature, text="first", author=alice)
    with pytest.raises(ApplicationError):
        services.explanation_edit(user=alice, explanation_id=e.pk, text=" ")
    assert Explanation.objects.get(pk=e.pk).text == "first"


# -- JSON API --------------------------------------------------------------------------------------


def test_the_api_refuses_an_empty_explanation(client, indexed, auth):
    response = client.post(
        f"{BASE}/13/explanations", {"text": "  "}, content_type="application/json", **auth
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_explanation"


def test_the_api_refuses_a_second_vote_and_allows_retracting(client, feature, auth):
    e = services.explanation_create(feature=feature, text="x", method="offline")
    url = f"/api/v1/explanations/{e.pk}/vote"
    assert (
        client.post(url, {"value": 1}, content_type="application/json", **auth).status_code == 200
    )
    again = client.post(url, {"value": 1}, content_type="application/json", **auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_voted"
    assert client.delete(url, **auth).status_code == 204
    assert (
        client.post(url, {"value": -1}, content_type="application/json", **auth).status_code == 200
    )


def test_charlie_cannot_vote_edit_or_queue(client, feature):
    e = services.explanation_create(feature=feature, text="x", method="offline")
    assert (
        client.post(
            f"/api/v1/explanations/{e.pk}/vote", {"value": 1}, content_type="application/json"
        ).status_code
        == 401
    )
    assert (
        client.patch(
            f"/api/v1/explanations/{e.pk}", {"text": "y"}, content_type="application/json"
        ).status_code
        == 401
    )
    assert client.post(f"{BASE}/13/explain").status_code == 401


def test_bob_edits_his_explanation_through_the_api(client, feature, auth, alice):
    created = client.post(
        f"{BASE}/13/explanations", {"text": "prose"}, content_type="application/json", **auth
    )
    eid = created.json()["id"]
    response = client.patch(
        f"/api/v1/explanations/{eid}",
        {"text": '" of" tokens'},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == '" of" tokens' and body["score_method"] == "detection:offline"
    assert body["score_sample_size"] > 0
    theirs = services.explanation_submit(feature=feature, text="alice's", author=alice)
    denied = client.patch(
        f"/api/v1/explanations/{theirs.pk}", {"text": "x"}, content_type="application/json", **auth
    )
    assert denied.status_code == 403


def test_queueing_an_llm_explanation_without_an_endpoint_is_a_clear_503(client, indexed, auth):
    response = client.post(f"{BASE}/13/explain", **auth)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_endpoint"


def test_bob_queues_an_llm_explanation_of_one_feature(client, indexed, auth, settings):
    settings.EXPLAINER_BASE_URL = "http://127.0.0.1:1/v1"
    settings.EXPLAINER_MODEL = "m"
    response = client.post(f"{BASE}/13/explain", **auth)
    assert response.status_code == 202
    [job] = response.json()
    assert (job["kind"], job["status"], job["model"]) == ("explain", "queued", "m")
    assert client.post(f"{BASE}/13/explain", **auth).json() == []  # already queued: not twice
    jobs = client.get(f"{BASE}/13/explain-jobs").json()
    assert [j["id"] for j in jobs] == [job["id"]]
    assert client.post(f"{BASE}/0/explain", **auth).status_code == 404  # dead feature


def test_the_feature_page_shows_the_score_its_method_and_sample_size(client, feature):
    e = services.explanation_create(feature=feature, text='" of"', method="offline")
    services.explanation_score_request(explanation=e)
    body = client.get("/tiny/res-1/13/").content.decode()
    assert "detection:offline, n=" in body
