"""An SAE's quality metrics in the API: GET .../saes/{sae}/metrics and inside the SAE's JSON."""

from __future__ import annotations

import pytest

from tests.builders import make_evaluation, make_sae

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/tiny/saes/res-1/metrics"


def test_a_never_evaluated_sae_has_no_status_and_no_metrics(client):
    make_sae()
    body = client.get(URL).json()
    assert body["status"] is None and body["metrics"] is None and body["corpus"] is None


def test_it_returns_the_newest_finished_metrics_and_the_newest_state(client):
    sae = make_sae()
    make_evaluation(sae, loss_recovered=0.5)
    make_evaluation(sae, loss_recovered=0.75)
    running = make_evaluation(sae, status="running")
    running.tokens_done, running.tokens_total = 10, 40
    running.save()
    body = client.get(URL).json()
    assert body["status"] == "running"
    assert (body["tokens_done"], body["tokens_total"]) == (10, 40)
    assert body["metrics"]["loss_recovered"] == 0.75
    assert body["metrics"]["l0"] == 20.0 and body["corpus"] == "demo:val"
    assert body["evaluated"] is None  # the fixture rows never set `finished`


def test_an_undefined_figure_is_null(client):
    make_evaluation(make_sae(), loss_recovered=None)
    assert client.get(URL).json()["metrics"]["loss_recovered"] is None


def test_the_sae_json_and_the_model_json_carry_the_metrics(client):
    sae = make_sae()
    make_sae(sae.model, slug="res-2", source="other")
    make_evaluation(sae)
    detail = client.get("/api/v1/models/tiny/saes/res-1").json()
    assert detail["metrics"]["explained_variance"] == 0.9219
    listed = {s["slug"]: s["metrics"] for s in client.get("/api/v1/models/tiny/saes").json()}
    assert listed["res-1"]["loss_recovered"] == 0.9753 and listed["res-2"] is None
    model = client.get("/api/v1/models/tiny").json()
    assert [s["metrics"] is not None for s in model["saes"]] == [True, False]


def test_an_unknown_sae_is_a_404_in_the_error_shape(client):
    make_sae()
    response = client.get("/api/v1/models/tiny/saes/nope/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_endpoint_is_documented_with_each_metric_explained(client):
    schema = client.get("/api/v1/openapi.json").json()
    op = schema["paths"]["/api/v1/models/{model}/saes/{sae}/metrics"]["get"]
    assert op["summary"] == "An SAE's quality metrics"
    props = schema["components"]["schemas"]["MetricsOut"]["properties"]
    assert "zero-ablating" in props["loss_recovered"]["description"]
    assert set(props) >= {"l0", "explained_variance", "kl_div", "dead_fraction", "dense_fraction"}
