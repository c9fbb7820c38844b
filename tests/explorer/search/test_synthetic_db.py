"""tests/bench/_synthetic_db.py writes rows the app reads back exactly (binary COPY layout)."""

from __future__ import annotations

import pytest

from explorer.explanations.models import Explanation
from explorer.saes.models import SAE, Feature
from explorer.saes.selectors import feature_map_point, stored_examples

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_generator_writes_rows_the_models_read(test_database_url, client):
    from tests.bench._synthetic_db import generate

    report = generate(test_database_url, features=40, examples=5, context=8)

    assert (report.features, report.examples, report.explanations) == (40, 200, 40)
    sae = SAE.objects.select_related("model").get(slug="res", model__slug="bench")
    assert list(Feature.objects.filter(sae=sae).values_list("index", flat=True)) == list(range(40))
    f = Feature.objects.get(sae=sae, index=3)
    assert (
        len(f.hist_edges),
        len(f.hist_counts),
        len(f.top_logit_ids),
        len(f.neighbour_cosines),
    ) == (21, 20, 10, 10)
    assert f.hist_edges[-1] == pytest.approx(f.max_activation)
    assert f.top_logit_values == sorted(f.top_logit_values, reverse=True)
    assert all(0 <= i < len(sae.model.vocab) for i in f.top_logit_ids + f.bottom_logit_ids)
    assert -1 <= feature_map_point(sae=sae, index=3)[0] <= 1 and not f.dead
    assert client.get("/api/v1/models/bench/saes/res/features/3").status_code == 200
    assert Explanation.objects.filter(feature__sae=sae).count() == 40
    stored = stored_examples(sae_id=sae.pk, feature_indices=range(10))
    assert len(stored) == 50
    for e in stored:
        assert len(e.token_ids) == len(e.values) == 8
        assert e.values[e.max_position] == pytest.approx(e.max_value, rel=1e-3)
        assert (e.kind == "top") == (e.quantile_index is None)
        assert e.quantile_index is None or e.quantile_low <= e.max_value <= e.quantile_high
    top = [e for e in stored if e.feature_index == 3 and e.kind == "top"]
    assert len(top) == 3
    peaks = {e.token_ids[e.max_position] for e in top}
    assert len(peaks) == 1  # a feature's top examples peak on its own token
    body = client.get("/api/v1/models/bench/saes/res/features/3/examples").json()
    assert len(body["items"]) == 5
    token = sae.model.vocab[peaks.pop()]
    hits = client.get(
        "/api/v1/search", {"q": f'token:"{token}"', "model": "bench", "sae": "res"}
    ).json()["items"]
    assert 3 in [h["index"] for h in hits]
