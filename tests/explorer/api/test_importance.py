"""The importance API: charlie (anonymous) may ask for one feature, bulk runs need an account,
a job is never queued twice, results and the SAE overview read back."""

from __future__ import annotations

import pytest

from explorer.importance import services
from explorer.importance.models import FeatureImportance
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/tiny/saes/res-1/features/{}/importance"
BULK = "/api/v1/models/tiny/saes/res-1/importance"


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=12)


def test_charlie_can_ask_for_one_feature_and_it_is_queued_once(
    client, indexed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(URL.format(3), content_type="application/json")
        again = client.post(URL.format(3), content_type="application/json")
    assert first.status_code == 202 and again.status_code == 202
    assert first.json()["status"] == "queued"
    assert len(callbacks) == 1  # the second click finds the job pending
    assert FeatureImportance.objects.count() == 1


def test_a_never_requested_feature_reads_as_status_null(client, indexed):
    body = client.get(URL.format(3)).json()
    assert body["status"] is None and body["loss_delta"] is None


def test_a_dead_feature_is_refused(client, indexed):
    response = client.post(URL.format(0), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "dead_feature"


def test_a_stored_result_reads_back_with_token_strings(client, indexed):
    feature = indexed.features[3]
    FeatureImportance.objects.create(feature=feature, status="running")
    services.importance_store(
        feature_id=feature.pk,
        result={
            "loss_delta": {"zero": 0.25, "mean": 0.125, "resample": 0.2},
            "loss_clean": 3.0,
            "n_contexts": 4,
            "n_predictions": 40,
            "up": [(9, 0.01)],
            "down": [(1, -0.03)],
        },
    )
    body = client.get(URL.format(3)).json()
    assert body["status"] == "done"
    assert body["loss_delta"] == {"zero": 0.25, "mean": 0.125, "resample": 0.2}
    assert body["up"] == [{"token_id": 9, "token": " <script>", "value": 0.01}]
    assert body["down"][0]["token"] == " cat"


def test_a_finished_result_is_recomputed_only_when_forced(
    client, indexed, django_capture_on_commit_callbacks
):
    FeatureImportance.objects.create(feature=indexed.features[3], status="done", loss_zero=0.1)
    with django_capture_on_commit_callbacks() as callbacks:
        assert (
            client.post(URL.format(3), content_type="application/json").json()["status"] == "done"
        )
        forced = client.post(URL.format(3), {"force": True}, content_type="application/json")
    assert forced.json()["status"] == "queued"
    assert len(callbacks) == 1


def test_charlie_cannot_start_a_bulk_run(client, indexed):
    assert client.post(BULK, content_type="application/json").status_code == 401


def test_bob_starts_a_bulk_run_over_the_live_features(
    client, indexed, bob_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            BULK, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {bob_key}"
        )
    live = 12 - len(indexed.dead)
    assert response.status_code == 202 and response.json() == {"queued": live}
    assert len(callbacks) == 1
    assert FeatureImportance.objects.filter(status="queued").count() == live


def test_a_wrong_api_key_is_refused_even_for_one_feature(client, indexed):
    response = client.post(
        URL.format(3), content_type="application/json", HTTP_AUTHORIZATION="Bearer nope"
    )
    assert response.status_code == 401


def test_the_overview_gives_points_with_importance_and_every_live_cosine(client, indexed):
    FeatureImportance.objects.create(feature=indexed.features[3], status="done", loss_zero=0.5)
    FeatureImportance.objects.create(feature=indexed.features[4], status="queued")
    body = client.get(BULK).json()
    live = [f for f in indexed.features if not f.dead]
    assert body["index"] == [3] and body["importance"] == [0.5]
    assert body["density"] == [pytest.approx(indexed.features[3].density)]
    assert body["n_live"] == len(live) and body["n_dead"] == len(indexed.dead)
    assert body["max_cosine"] == [0.5] * len(live)


def test_importance_inputs_are_the_stored_windows_and_statistics(indexed):
    from explorer.importance.selectors import importance_inputs

    feature = indexed.features[3]
    (inputs,) = importance_inputs(feature_ids=[feature.pk])
    assert len(inputs.top) == 3 and all(len(c) == 12 for c in inputs.top)
    assert inputs.quantile_bins == [[[3] * 4]]
    assert inputs.mean == pytest.approx(feature.density * feature.mean_activation)
    assert inputs.hist_counts == [50, 20, 8, 2]


def test_charlie_queues_at_most_the_rate_of_jobs_and_a_refusal_changes_nothing(
    client, indexed, settings
):
    settings.IMPORTANCE_RATE_LIMIT = 2
    live = [f.index for f in indexed.features if not f.dead][:3]

    def ask(index: int):
        return client.post(URL.format(index), content_type="application/json")

    assert [ask(i).status_code for i in live[:2]] == [202, 202]
    assert ask(live[0]).status_code == 202  # pending: no new job, no count
    refused = ask(live[2])
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("rate limit: at most 2 importance jobs")
    assert int(refused["Retry-After"]) >= 1
    assert FeatureImportance.objects.count() == 2


def test_bob_starts_at_most_the_rate_of_bulk_runs(client, indexed, bob_key, settings):
    settings.IMPORTANCE_BULK_RATE_LIMIT = 1
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bob_key}"}
    assert client.post(BULK, content_type="application/json", **auth).status_code == 202
    pending = client.post(BULK, {"force": True}, content_type="application/json", **auth)
    assert pending.json() == {"queued": 0}  # every job still pending: nothing queued, no count
    FeatureImportance.objects.update(status="done")
    again = client.post(BULK, {"force": True}, content_type="application/json", **auth)
    assert again.status_code == 429 and again.json()["error"]["code"] == "rate_limited"
    assert not FeatureImportance.objects.exclude(status="done").exists()  # nothing changed
