"""The steering page (`/<model>/steer/`) and steering permalinks (`/steer/<id>/`)."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.django_db


def _config(response) -> dict:
    match = re.search(
        r'<script id="steer-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.DOTALL,
    )
    assert match, "the page carries steer-config"
    return json.loads(match.group(1))


@pytest.fixture
def demo(db):
    from tests.builders import build_indexed_sae, make_language_model, make_sae

    lm = make_language_model(slug="demo", source="demo")
    sae = make_sae(lm, slug="res", d_sae=32)
    build_indexed_sae(sae=sae)
    return lm, sae


def test_the_page_config_follows_the_contract(client, demo):
    config = _config(client.get("/demo/steer/"))
    assert config["model"] == "demo"
    assert config["ws_path"] == "/ws/steer/"
    assert config["saes"] == [{"slug": "res", "d_sae": 32, "hook_name": "blocks.1.hook_resid_post"}]
    assert set(config["limits"]) == {
        "strength_min",
        "strength_max",
        "max_features",
        "max_new_tokens",
        "max_prompt_chars",
        "max_chat_chars",
    }
    assert config["result"] is None
    assert config["initial"]["features"] == []
    assert config["chat"] is False and config["initial"]["chat"] is None  # no chat template


def test_the_query_string_becomes_the_initial_panel(client, demo):
    from explorer.saes.models import Feature

    url = (
        "/demo/steer/?prompt=%3Cscript%3Ealert(1)%3C/script%3E&f=res:5:12.5&f=res:7:-3:clamp"
        "&f=res:999:1&f=bad&t=0.3&p=0.9&seed=42&n=20&pos=generated"
    )
    response = client.get(url)
    assert b"<script>alert(1)" not in response.content  # json_script escapes it
    initial = _config(response)["initial"]
    assert initial["prompt"] == "<script>alert(1)</script>"
    assert [(f["index"], f["strength"], f["mode"]) for f in initial["features"]] == [
        (5, 12.5, "add"),
        (7, -3.0, "clamp"),
    ]
    assert (
        initial["features"][0]["max_activation"]
        == Feature.objects.get(sae__slug="res", index=5).max_activation
    )
    assert (
        initial["temperature"],
        initial["top_p"],
        initial["seed"],
        initial["max_new_tokens"],
        initial["positions"],
    ) == (0.3, 0.9, 42, 20, "generated")


def test_features_left_out_of_a_link_are_named_on_the_page(client, demo):
    url = "/demo/steer/?f=res:5:2&f=res:745:4&f=mlp:3:1&f=res:x:1&f=res:6:1:sideways&v=999:2&v=z"
    response = client.get(url)
    config = _config(response)
    assert [f["index"] for f in config["initial"]["features"]] == [5]
    assert config["notices"] == [
        "Left out feature res#745: res has 32 features (0–31).",
        "Left out feature mlp#3: demo has no SAE “mlp” (its SAEs: res).",
        "Left out “f=res:x:1”: the index and the strength must be numbers.",
        "Left out feature res#6: its mode must be one of add, clamp, ablate, logit.",
        "Left out “v=z”: write a steering vector as id:strength.",
        "Left out steering vector 999: demo has no such vector.",
    ]
    body = response.content.decode()
    assert '<ul class="steer-notices" role="status">' in body
    assert "<li>Left out feature res#745: res has 32 features (0–31).</li>" in body


def test_a_clean_link_has_no_notices_and_a_strength_past_the_limit_is_clamped_with_one(
    client, demo
):
    assert _config(client.get("/demo/steer/?f=res:5:2"))["notices"] == []
    config = _config(client.get("/demo/steer/?f=res:5:1e9"))
    assert config["initial"]["features"][0]["strength"] == config["limits"]["strength_max"]
    assert config["notices"] == [
        f"The strength of res#5 is limited to ±{config['limits']['strength_max']:g}."
    ]


def test_the_notices_escape_what_the_link_said(client, demo):
    body = client.get("/demo/steer/?f=<b>x</b>:1:1").content.decode()
    assert "<b>x</b>" not in body.split("steer-config")[0]
    assert "&lt;b&gt;x&lt;/b&gt;" in body


def test_out_of_range_settings_fall_back_to_defaults(client, demo):
    initial = _config(client.get("/demo/steer/?t=nan&n=100000&seed=-4&pos=x"))["initial"]
    assert initial["temperature"] == 0.7
    assert initial["seed"] == 0
    assert initial["positions"] == "all"
    assert initial["max_new_tokens"] == 32


def test_an_unknown_model_is_404(client, demo):
    assert client.get("/gpt-17/steer/").status_code == 404


def test_a_permalink_restores_the_request_and_both_texts(client, demo):
    from explorer.steering.services import FinishedGeneration, steering_result_store
    from workers.engine.specs import Intervention, SteerRequest, SteerSpec

    _, sae = demo
    request = SteerRequest(
        model="demo",
        sae=sae.source,
        prompt="The cat",
        spec=SteerSpec(
            (Intervention(5, 4.0),), temperature=0.5, top_p=1.0, seed=9, max_new_tokens=3
        ),
    )
    result = steering_result_store(
        generation=FinishedGeneration(
            request=request,
            default_text=" sat on",
            default_tokens=[2, 3, 4],
            steered_text=" <script>",
            steered_tokens=[9, 1, 2],
        )
    )
    assert result.request == {
        "model": "demo",
        "sae": "res",
        "prompt": "The cat",
        "features": [{"sae": "res", "index": 5, "strength": 4.0, "mode": "add"}],
        "vectors": [],
        "positions": "all",
        "temperature": 0.5,
        "top_p": 1.0,
        "seed": 9,
        "max_new_tokens": 3,
    }
    response = client.get(f"/steer/{result.pk}/")
    assert response.status_code == 200
    assert b"<script>" not in response.content.split(b'id="steer-config"')[1].split(b"</script>")[0]
    config = _config(response)
    assert config["model"] == "demo"
    assert config["initial"]["prompt"] == "The cat"
    assert config["initial"]["features"][0]["index"] == 5
    assert config["initial"]["seed"] == 9
    assert config["result"]["id"] == result.pk
    assert config["result"]["steered_text"] == " <script>"
    assert config["result"]["default_tokens"] == [" sat", " on", " mat"]


def test_an_unknown_permalink_is_404(client, demo):
    assert client.get("/steer/nope/").status_code == 404


def test_storing_the_same_key_twice_keeps_the_first_result(demo):
    from explorer.steering.services import FinishedGeneration, steering_result_store
    from workers.engine.specs import SteerRequest, SteerSpec

    _, sae = demo
    request = SteerRequest(model="demo", sae=sae.source, prompt="a", spec=SteerSpec())
    kwargs = {"request": request, "default_text": "a", "default_tokens": [], "steered_tokens": []}
    first = steering_result_store(generation=FinishedGeneration(steered_text="b", **kwargs))
    second = steering_result_store(generation=FinishedGeneration(steered_text="c", **kwargs))
    assert first.pk == second.pk and second.steered_text == "b"
