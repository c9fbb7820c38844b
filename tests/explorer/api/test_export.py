"""Streamed exports: GET /api/v1/models/{m}/saes/{s}/export/{features|examples}?format=csv|json.

The export reads on a connection of its own (a server-side cursor in its own transaction), so
these tests commit their rows (transactional_db). Exports need an account: alice is signed in,
bob sends his API key (who may export, and how much: test_export_limits.py)."""

from __future__ import annotations

import csv
import io
import json
import math
import urllib.request

import pytest
from django.http import StreamingHttpResponse

from explorer.explanations.models import Explanation
from explorer.saes.models import SAEMap
from tests.builders import build_indexed_sae

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The sync test client buffers the async stream (with this warning); the ASGI test streams.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators"),
]

BASE = "/api/v1/models/tiny/saes/res-1/export"


@pytest.fixture
def indexed():
    built = build_indexed_sae(d_sae=24, examples_per_feature=2)
    Explanation.objects.create(
        feature=built.features[3], text='river "bank", water', method="offline"
    )
    return built


@pytest.fixture
def client(client, alice):
    client.force_login(alice)
    return client


def body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response)


def test_features_csv_has_one_row_per_feature_with_its_explanation(client, indexed):
    response = client.get(BASE + "/features")
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="tiny-res-1-features.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert [int(r["index"]) for r in rows] == list(range(24))
    assert rows[3]["explanation"] == 'river "bank", water'
    assert json.loads(rows[3]["neighbour_indices"]) == [4, 5]
    assert (rows[0]["dead"], rows[1]["dead"]) == ("true", "false")
    assert float(rows[1]["density"]) == indexed.features[1].density
    assert float(rows[2]["map_x"]) == pytest.approx(math.cos(2), abs=1e-6)
    assert float(rows[2]["map_y"]) == pytest.approx(math.sin(2), abs=1e-6)


def test_features_before_the_map_is_laid_out_export_empty_coordinates(client, indexed):
    SAEMap.objects.filter(sae=indexed.sae).delete()
    rows = list(csv.DictReader(io.StringIO(body(client.get(BASE + "/features")).decode())))
    assert len(rows) == 24 and {(r["map_x"], r["map_y"]) for r in rows} == {("", "")}
    doc = json.loads(body(client.get(BASE + "/features?format=json")))
    assert {(f["map_x"], f["map_y"]) for f in doc["items"]} == {(None, None)}


def test_features_json_is_one_document(client, indexed):
    doc = json.loads(body(client.get(BASE + "/features?format=json")))
    assert (doc["model"], doc["sae"], doc["kind"]) == ("tiny", "res-1", "features")
    assert [f["index"] for f in doc["items"]] == list(range(24))
    assert doc["items"][3]["explanation"] == 'river "bank", water'
    assert doc["items"][3]["hist_counts"] == [50, 20, 8, 2]
    assert doc["items"][0]["dead"] is True
    assert doc["items"][2]["map_x"] == pytest.approx(math.cos(2), abs=1e-6)


def test_examples_json_carries_tokens_and_values(client, indexed):
    doc = json.loads(body(client.get(BASE + "/examples?format=json")))
    vocab = indexed.sae.model.vocab
    live = 24 - len(indexed.dead)
    assert len(doc["items"]) == live * 3  # two top, one quantile each
    first = doc["items"][0]
    assert first["tokens"] == [vocab[i] for i in first["token_ids"]]
    assert first["values"][first["max_position"]] == pytest.approx(first["max_value"], rel=1e-3)
    assert [e["kind"] for e in doc["items"][:3]] == ["top", "top", "quantile"]


def test_examples_csv_survives_tokens_with_commas_quotes_and_newlines(client, indexed):
    rows = list(csv.DictReader(io.StringIO(body(client.get(BASE + "/examples")).decode())))
    tokens = {t for r in rows for t in json.loads(r["tokens"])}
    assert {"\n", " <script>", "\t"} <= tokens


def test_export_of_an_unknown_sae_is_a_json_404(client, indexed):
    response = client.get("/api/v1/models/tiny/saes/nope/export/features")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_asgi_server_streams_the_export_in_chunks(live_server_url, indexed, bob_key):
    request = urllib.request.Request(
        live_server_url + BASE + "/features?format=json",
        headers={"Authorization": f"Bearer {bob_key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers.get("Transfer-Encoding") == "chunked"
        doc = json.loads(response.read())
    assert len(doc["items"]) == 24


def test_values_are_written_to_float16_precision_and_nan_as_null():
    import numpy as np

    from explorer.saes.example_copy import nz_pack, sparsify
    from explorer.search.exports import _values_json

    dense = np.array([0.15, 1.0, float("nan"), 0.0, -2.5])
    assert json.loads(_values_json(nz_pack(*sparsify(dense), 5), 5)) == [
        0.15,
        1,
        None,
        0,
        -2.5,
    ]
