"""`text:` over every SAE of a model through GET /api/v1/search and the /search/ page, with a
real worker on live.demo (the demo model with two SAEs: tests/fixtures/saes.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.template.defaultfilters import floatformat

from explorer.explanations.models import Explanation
from explorer.saes.models import Feature

pytestmark = pytest.mark.integration

TEXT = "The river bank was full of water."


@pytest.fixture(autouse=True)
def _fresh_cache(fresh_activation_cache):
    """Every test here starts with nothing cached (tests/fixtures/services.py)."""


def per_sae_test(client, sae: str, top_k: int) -> list[dict]:
    response = client.post(
        "/api/v1/activations/test",
        {"model": "demo", "sae": sae, "text": TEXT, "top_k": top_k},
        content_type="application/json",
    )
    return response.json()["top_features"]


def test_the_api_returns_each_saes_hits_and_groups_them(client, demo_two_saes, celery_worker_proc):
    response = client.get(
        "/api/v1/search", {"q": f"text:{TEXT}", "model": "demo", "limit": 4, "group": "sae"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    groups = body["groups"]
    assert [(g["sae"], g["hook_name"], g["url"]) for g in groups] == [
        ("demo", "blocks.1.hook_resid_post", "/demo/demo/"),
        ("deep", "blocks.2.hook_resid_post", "/demo/deep/"),
    ]
    assert body["items"] == [item for g in groups for item in g["items"]]
    for group in groups:
        cache.clear()  # the per-SAE test computes its own answer
        expected = per_sae_test(client, group["sae"], 4)
        assert [(i["index"], i["activation"]) for i in group["items"]] == [
            (t["index"], t["max_value"]) for t in expected
        ]
        assert all(
            i["sae"] == group["sae"] and i["url"] == f"/demo/{group['sae']}/{i['index']}/"
            for i in group["items"]
        )


def test_without_group_the_response_keeps_its_shape(client, demo_two_saes, celery_worker_proc):
    body = client.get("/api/v1/search", {"q": f"text:{TEXT}", "model": "demo", "limit": 2}).json()
    assert body["groups"] is None
    assert {i["sae"] for i in body["items"]} == {"demo", "deep"}
    assert {i["match"] for i in body["items"]} == {"text"}


def test_the_page_lists_the_features_under_a_heading_per_sae(
    client, demo_two_saes, celery_worker_proc
):
    demo, _ = demo_two_saes
    top = per_sae_test(client, "demo", 3)
    feature = Feature.objects.create(sae=demo, index=top[0]["index"], density=0.0123)
    Explanation.objects.create(feature=feature, text="<b>rivers</b>", method="human")
    response = client.get("/search/", {"q": TEXT, "model": "demo", "mode": "text", "limit": 3})
    assert response.status_code == 200
    body = response.content.decode()
    demo_at, deep_at = body.index('<a href="/demo/demo/">'), body.index('<a href="/demo/deep/">')
    assert demo_at < deep_at
    demo_part, deep_part = body[demo_at:deep_at], body[deep_at:]
    for t in top:
        assert f'<a href="/demo/demo/{t["index"]}/">#{t["index"]}</a>' in demo_part
    assert floatformat(top[0]["max_value"], 3) in demo_part
    assert "&lt;b&gt;rivers&lt;/b&gt;" in demo_part and "<b>rivers" not in body
    assert "0.0123" in demo_part
    assert 'href="/demo/deep/' in deep_part
    assert 'value="demo/" selected' in body  # the scope kept for the next search


def test_no_live_worker_is_a_503_naming_the_model(client, demo_two_saes, celery_worker_proc):
    celery_worker_proc.stop()
    response = client.get("/api/v1/search", {"q": f"text:{TEXT}", "model": "demo"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_live_worker"
