"""POST /api/v1/activations/test: a real worker on live.demo runs the demo SAE; results are
cached by (SAE, text, index); no worker gives a clear 503; bad input is refused up front."""

from __future__ import annotations

import time

import pytest

from explorer.explanations.models import Explanation
from explorer.saes.models import Feature

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/activations/test"


@pytest.fixture
def demo_sae():
    from workers.registration import sae_register_from_specs

    return sae_register_from_specs(model_spec="demo", sae_spec="demo").sae


@pytest.fixture(autouse=True)
def _fresh_cache(fresh_activation_cache):
    """Every test here starts with nothing cached (tests/fixtures/services.py)."""


def run(client, **body):
    return client.post(
        URL, {"model": "demo", "sae": "demo", **body}, content_type="application/json"
    )


def test_charlie_tests_a_feature_on_his_text(client, demo_sae, celery_worker_proc):
    response = run(client, text="The cat sat on the mat.", index=12)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["tokens"]) == len(body["token_ids"]) == len(body["values"]) > 0
    assert "".join(body["tokens"]) == "The cat sat on the mat."
    assert body["max_activation"] == pytest.approx(max(body["values"]), abs=1e-3)
    assert body["top_features"] == []


def test_without_an_index_it_returns_the_top_features_with_explanations(
    client, demo_sae, celery_worker_proc
):
    first = run(client, text="The river bank.", top_k=5).json()
    top = first["top_features"]
    assert 0 < len(top) <= 5
    assert first["values"] is None
    feature = Feature.objects.create(sae=demo_sae, index=top[0]["index"])
    Explanation.objects.create(feature=feature, text="rivers", method="offline")
    again = run(client, text="The river bank.", top_k=5).json()  # cached, explanations fresh
    assert again["top_features"][0]["explanation"] == "rivers"


def test_a_cached_result_is_served_without_a_worker(client, demo_sae, celery_worker_proc):
    first = run(client, text="Cached text.", index=3).json()
    celery_worker_proc.stop()
    started = time.monotonic()
    assert run(client, text="Cached text.", index=3).json() == first
    assert time.monotonic() - started < 2


def test_no_live_worker_is_a_clear_503(client, demo_sae, celery_worker_proc):
    celery_worker_proc.stop()
    started = time.monotonic()
    response = run(client, text="Nobody is listening.", index=3)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_live_worker"
    assert "demo" in response.json()["error"]["message"]
    assert time.monotonic() - started < 10


def test_a_text_too_long_for_the_model_is_a_400_from_the_worker(
    client, demo_sae, celery_worker_proc
):
    response = run(client, text="word " * 300, index=3)
    assert response.status_code == 400
    assert "context" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "   "}, 400, "empty_text"),
        ({"text": "x" * 3000}, 400, "text_too_long"),
        ({"text": "hi", "index": 99999}, 404, "invalid_index"),
        ({"text": "hi", "sae": "nope"}, 404, "not_found"),
    ],
)
def test_bad_input_is_refused_before_any_worker_runs(client, demo_sae, body, status, code):
    response = run(client, **body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_wrong_api_key_is_still_refused(client, demo_sae):
    response = client.post(
        URL,
        {"model": "demo", "sae": "demo", "text": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer sfe_wrong",
    )
    assert response.status_code == 401


def test_search_by_text_returns_the_top_features_as_hits(client, demo_sae, celery_worker_proc):
    items = client.get(
        "/api/v1/search", {"q": "text:The river bank.", "model": "demo", "sae": "demo", "limit": 5}
    ).json()["items"]
    expected = [
        t["index"] for t in run(client, text="The river bank.", top_k=5).json()["top_features"]
    ]
    assert [i["index"] for i in items] == expected
    assert {i["match"] for i in items} == {"text"}
    assert items[0]["url"] == f"/demo/demo/{expected[0]}/"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"top_k": 0}, "top_k"), ({"top_k": 101}, "top_k"), ({"index": -1}, "index")],
)
def test_numbers_out_of_range_are_a_422_naming_the_field(client, body, field):
    response = run(client, text="The river bank.", **body)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(f"body.payload.{field}: ")


def test_past_the_rate_limit_a_text_test_is_429_with_retry_after(client, demo_sae, settings):
    settings.LIVE_TEST_RATE_LIMIT = 1
    settings.LIVE_TEST_RATE_WINDOW_S = 3600  # a fixed window: the two requests share one
    first = run(client, text="One text.", index=3)  # counted whether a worker answers or not
    assert first.status_code != 429
    refused = run(client, text="Another text.", index=3)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("rate limit: at most 1 text tests per 3600 s")
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert error["retry_after"] == int(refused["Retry-After"])


def test_a_text_search_counts_against_the_same_limit(client, demo_sae, settings):
    settings.LIVE_TEST_RATE_LIMIT = 1
    settings.LIVE_TEST_RATE_WINDOW_S = 3600
    run(client, text="One text.", index=3)
    api = client.get("/api/v1/search", {"q": "text:Another text.", "model": "demo"})
    assert api.status_code == 429 and "Retry-After" in api
    page = client.get("/search/", {"q": "text:Another text.", "scope": "demo/demo"})
    assert page.status_code == 429 and "Retry-After" in page
    assert "rate limit: at most 1 text tests" in page.content.decode()
