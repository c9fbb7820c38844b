"""GET /api/v1/models..., /features (keyset pages), /features/{index} (the Feature JSON
contract), examples, neighbours, explanations; POST explanations and votes."""

from __future__ import annotations

import math

import pytest

from explorer.explanations.models import Explanation
from explorer.saes.models import Example, SAEMap
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db

BASE = "/api/v1/models/tiny/saes/res-1"


@pytest.fixture
def indexed():
    built = build_indexed_sae(d_sae=32, examples_per_feature=3)
    f5 = built.features[5]
    Explanation.objects.create(feature=f5, text="river banks", method="offline", score=0.2)
    Explanation.objects.create(feature=f5, text="money and banks", method="llm:gpt-4o", score=0.9)
    return built


def test_models_list_their_sae_counts(client, indexed):
    body = client.get("/api/v1/models").json()
    assert body == [
        {
            "slug": "tiny",
            "source": "tiny-source",
            "architecture": "gpt2",
            "d_model": 16,
            "n_layers": 2,
            "n_ctx": 128,
            "n_saes": 1,
            "url": "/tiny/",
        }
    ]
    assert [s["slug"] for s in client.get("/api/v1/models/tiny").json()["saes"]] == ["res-1"]
    assert client.get(f"{BASE}").json()["d_sae"] == 32


def test_feature_json_follows_the_contract(client, indexed):
    body = client.get(f"{BASE}/features/5").json()
    assert set(body) == {
        "model",
        "sae",
        "index",
        "density",
        "max_activation",
        "mean_activation",
        "dead",
        "hist_edges",
        "hist_counts",
        "top_logits",
        "bottom_logits",
        "neighbours",
        "map_x",
        "map_y",
        "explanations",
        "url",
    }
    assert (body["model"], body["sae"], body["index"], body["url"]) == (
        "tiny",
        "res-1",
        5,
        "/tiny/res-1/5/",
    )
    vocab = indexed.sae.model.vocab
    assert body["top_logits"][0] == {"token_id": 5, "token": vocab[5], "value": 1.5}
    assert body["neighbours"] == [{"index": 6, "cosine": 0.5}, {"index": 7, "cosine": 0.25}]
    assert [e["text"] for e in body["explanations"]] == ["money and banks", "river banks"]
    assert set(body["explanations"][0]) >= {"id", "text", "method", "score", "author"}
    assert len(body["hist_edges"]) == len(body["hist_counts"]) + 1
    assert (body["map_x"], body["map_y"]) == pytest.approx((math.cos(5), math.sin(5)), abs=1e-6)


def test_a_feature_before_its_map_is_laid_out_has_null_coordinates(client, indexed):
    SAEMap.objects.filter(sae=indexed.sae).delete()
    body = client.get(f"{BASE}/features/5").json()
    assert (body["map_x"], body["map_y"]) == (None, None)


def test_a_dead_feature_says_so_with_empty_stats(client, indexed):
    body = client.get(f"{BASE}/features/10").json()
    assert body["dead"] is True
    assert body["hist_counts"] == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/models/nope/saes/res-1/features/1", "not_found"),
        (f"{BASE}/features/32", "not_found"),
        (f"{BASE}/features/-1", "not_found"),
    ],
)
def test_unknown_things_are_json_404s(client, indexed, path, code):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == code


def test_a_non_numeric_index_is_a_json_error(client, indexed):
    response = client.get(f"{BASE}/features/abc")
    assert response.status_code in (404, 422)
    assert "error" in response.json()


def test_examples_come_with_token_strings_and_unpacked_values(client, indexed):
    items = client.get(f"{BASE}/features/5/examples").json()["items"]
    assert [e["kind"] for e in items] == ["top", "top", "top", "quantile"]
    first = items[0]
    vocab = indexed.sae.model.vocab
    assert first["tokens"] == [vocab[i] for i in first["token_ids"]]
    assert len(first["values"]) == len(first["token_ids"])
    assert first["values"][first["max_position"]] == pytest.approx(first["max_value"], rel=1e-3)
    assert first["max_value"] >= items[1]["max_value"] >= items[2]["max_value"]
    quantiles = client.get(f"{BASE}/features/5/examples?kind=quantile").json()["items"]
    assert [e["quantile_index"] for e in quantiles] == [0]


def test_token_text_is_returned_verbatim_for_the_client_to_escape(client, indexed):
    items = client.get(f"{BASE}/features/9/examples?kind=top").json()[
        "items"
    ]  # peaks on " <script>"
    assert items[0]["tokens"][items[0]["max_position"]] == " <script>"


def test_neighbours_carry_their_explanations_and_links(client, indexed):
    items = client.get(f"{BASE}/features/4/neighbours").json()["items"]
    assert [(n["index"], n["cosine"]) for n in items] == [(5, 0.5), (6, 0.25)]
    assert items[0]["explanation"] == "money and banks"
    assert items[0]["url"] == "/tiny/res-1/5/"


def walk(client, sort, limit=7, **extra):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"sort": sort, "limit": limit, **extra}
        if cursor:
            params["cursor"] = cursor
        body = client.get(f"{BASE}/features", params).json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


@pytest.mark.parametrize(
    "sort", ["index", "-index", "density", "-density", "max_activation", "-max_activation"]
)
def test_keyset_pages_visit_every_feature_once_in_order(client, indexed, sort):
    items, pages = walk(client, sort)
    assert pages == 5  # 32 features, 7 a page
    field, desc = sort.lstrip("-"), sort.startswith("-")
    keys = [(f[field], f["index"]) for f in items]
    assert keys == sorted(keys, reverse=desc)
    assert sorted(f["index"] for f in items) == list(range(32))


def test_ties_on_the_sort_value_are_not_lost_between_pages(client, indexed):
    # Dead features all have density 0: a tie across page boundaries.
    items, _ = walk(client, "density", limit=2)
    assert sorted(f["index"] for f in items) == list(range(32))


def test_pages_can_leave_dead_features_out_and_carry_explanations(client, indexed):
    items, _ = walk(client, "index", limit=50, dead="false")
    assert all(not f["dead"] for f in items)
    assert len(items) == 32 - len(indexed.dead)
    assert next(f for f in items if f["index"] == 5)["explanation"] == "money and banks"


def test_a_forged_cursor_is_a_clear_400(client, indexed):
    response = client.get(f"{BASE}/features", {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["-1", "0", "201", "many"])
def test_a_limit_outside_1_to_200_is_a_422_naming_it(client, indexed, limit):
    response = client.get(f"{BASE}/features", {"limit": limit})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"].startswith("query.limit: ")


def test_an_unknown_sort_is_a_422_naming_it(client, indexed):
    response = client.get(f"{BASE}/features", {"sort": "evil"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("query.sort: Input should be 'index'")


@pytest.mark.parametrize("query", [{"order": "evil"}, {"min_density": "NaN"}])
def test_a_parameter_the_list_does_not_take_is_a_422_naming_it(client, indexed, query):
    response = client.get(f"{BASE}/features", {"sort": "density", **query})
    assert response.status_code == 422
    name = next(iter(query))
    takes = "sort, cursor, limit, dead"
    assert response.json()["error"] == {
        "message": f"query.{name}: unknown parameter; this endpoint takes {takes}.",
        "code": "invalid",
    }


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_cursor_holding_a_non_finite_value_is_a_clear_400(client, indexed, value):
    from explorer.saes.selectors import encode_cursor

    response = client.get(
        f"{BASE}/features", {"sort": "density", "cursor": encode_cursor(value, 3)}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_bob_adds_an_explanation_and_votes(client, indexed, bob_key):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bob_key}"}
    response = client.post(
        f"{BASE}/features/3/explanations",
        {"text": "  the word sat "},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["text"], body["method"], body["author"]) == ("the word sat", "human", "bob")
    vote = client.post(
        f"/api/v1/explanations/{body['id']}/vote",
        {"value": -1},
        content_type="application/json",
        **auth,
    )
    assert vote.json() == {"explanation": body["id"], "value": -1}
    listed = client.get(f"{BASE}/features/3/explanations").json()
    assert listed[0]["votes"] == -1


def test_charlie_cannot_add_an_explanation(client, indexed):
    response = client.post(
        f"{BASE}/features/3/explanations", {"text": "x"}, content_type="application/json"
    )
    assert response.status_code == 401


def test_example_kinds_other_than_top_and_quantile_are_rejected(client, indexed):
    assert client.get(f"{BASE}/features/5/examples?kind=other").status_code == 422
    assert Example.objects.filter(sae=indexed.sae).exists()
