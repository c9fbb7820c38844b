"""CAA steering vectors: built from contrast pairs by the live worker, decomposed into SAE
features, and steered with like a feature."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from explorer.steering.services import VectorError, contrast_pairs_parse
from tests.explorer.steering.helpers import collect, connect, steer
from tests.helpers import wait_until

PAIRS = "\n".join(
    json.dumps(p)
    for p in [
        {"prompt": "I think the weather is", "positive": " wonderful", "negative": " terrible"},
        {"prompt": "The food was", "positive": " great", "negative": " awful"},
        {"prompt": "She said it was", "positive": " good", "negative": " bad"},
    ]
)


def test_contrast_pairs_are_read_from_jsonl():
    pairs = contrast_pairs_parse(text=PAIRS + "\n\n")
    assert len(pairs) == 3 and pairs[0]["positive"] == " wonderful"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "line 1 is not JSON"),
        ('{"prompt": "a", "positive": "b"}', "exactly"),
        ('{"prompt": "a", "positive": "b", "negative": "b"}', "identical"),
        ('{"prompt": "", "positive": "b", "negative": "c"}', "non-empty"),
        ("[1, 2]", "exactly"),
    ],
)
def test_bad_contrast_pairs_are_refused_naming_the_line(text, needle):
    with pytest.raises(VectorError) as info:
        contrast_pairs_parse(text=text)
    assert needle in info.value.message


@pytest.mark.django_db
def test_creating_a_vector_needs_an_account(client, demo_rows):
    response = client.post(
        "/api/v1/steering/vectors",
        {"model": "demo", "sae": "demo", "label": "positive", "pairs": PAIRS},
        content_type="application/json",
    )
    assert response.status_code == 401


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_vector_is_built_decomposed_and_steers(client, demo_rows, bob_key, celery_worker_proc):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bob_key}"}
    response = client.post(
        "/api/v1/steering/vectors",
        {"model": "demo", "sae": "demo", "label": "positive", "pairs": PAIRS},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 201, response.content
    vector = response.json()
    assert vector["status"] == "pending" and vector["n_pairs"] == 3
    url = f"/api/v1/steering/vectors/{vector['id']}"

    def settled() -> dict | None:
        current = client.get(url).json()
        return current if current["status"] != "pending" else None

    vector = wait_until(settled, timeout=90, interval=0.5, message="the vector is still pending")
    assert vector["status"] == "ready", vector
    assert len(vector["features"]) == 10 and vector["norm"] > 0
    cosines = [f["cosine"] for f in vector["features"]]
    assert cosines == sorted(cosines, reverse=True)
    assert 0 <= vector["residual_fraction"] <= 1

    async def scenario():
        comm = await connect()
        await comm.send_json_to(
            steer(
                1,
                prompt="The movie was",
                temperature=0.0,
                features=[{"vector": vector["id"], "strength": 8.0}],
            )
        )
        frames = await collect(comm, 1)
        await comm.disconnect(timeout=5)
        return frames

    frames = async_to_sync(scenario)()
    done = {f["row"]: f for f in frames if f["type"] == "done"}
    assert set(done) == {"default", "steered"}, frames[-1]
    assert done["default"]["text"] != done["steered"]["text"]


@pytest.mark.django_db
def test_aligned_features_come_with_their_best_explanation(client):
    from explorer.explanations.models import Explanation
    from explorer.steering.models import SteeringVector
    from tests.builders import build_indexed_sae

    indexed = build_indexed_sae(d_sae=8)
    Explanation.objects.create(feature=indexed.features[3], text="<b>weather</b>", method="human")
    vec = SteeringVector.objects.create(
        sae=indexed.sae,
        hook_name=indexed.sae.hook_name,
        label="sunny",
        status=SteeringVector.Status.READY,
        features=[
            {"index": 3, "cosine": 0.7, "weight": 1.0},
            {"index": 5, "cosine": 0.2, "weight": 0.1},
        ],
    )
    one = client.get(f"/api/v1/steering/vectors/{vec.pk}").json()
    assert [(f["index"], f["label"]) for f in one["features"]] == [(3, "<b>weather</b>"), (5, None)]
    listed = client.get(f"/api/v1/steering/vectors?model={indexed.sae.model.slug}").json()
    assert listed[0]["features"] == one["features"]


@pytest.mark.django_db
def test_an_account_starts_at_most_the_rate_of_vectors(client, demo_rows, bob_key, settings):
    from explorer.steering.models import SteeringVector

    settings.STEER_VECTOR_RATE_LIMIT = 1
    body = {"model": "demo", "sae": "demo", "label": "positive", "pairs": PAIRS}
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bob_key}"}

    def post():
        return client.post(
            "/api/v1/steering/vectors", body, content_type="application/json", **auth
        )

    assert post().status_code == 201
    refused = post()
    assert refused.status_code == 429
    assert refused.json()["error"]["retry_after"] == int(refused["Retry-After"])
    assert SteeringVector.objects.count() == 1
