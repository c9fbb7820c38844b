"""Corrupt or mismatched model and SAE files: `load_sae` and `load_model` raise CheckpointError,
one line naming the file and what is wrong (checkpoints.py, called from loading.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.engine.builders import build_sae, damage
from workers.engine.checkpoints import CheckpointError
from workers.engine.loading import load_model, load_sae

CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"


@pytest.fixture
def sae_dir(tmp_path) -> Path:
    """A JumpReLU SAE (d_in 32, d_sae 64) saved as a SAELens folder."""
    path = tmp_path / "sae"
    build_sae(32, d_sae=64, architecture="jumprelu").save_model(path)
    return path


@pytest.fixture
def model_dir(tmp_path, tiny_model_dir) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def refused(load, spec: Path, message: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        load(str(spec), device="cpu")
    text = str(caught.value)
    assert "\n" not in text
    assert re.search(message, text), text
    return text


def rewrite_tensors(path: Path, **changes) -> None:
    """Replace (a tensor) or drop (None) tensors of a safetensors file."""
    tensors = load_file(path)
    for name, tensor in changes.items():
        if tensor is None:
            del tensors[name]
        else:
            tensors[name] = tensor
    save_file(tensors, path)


def test_a_sound_sae_folder_still_loads(sae_dir):
    assert load_sae(str(sae_dir), device="cpu").cfg.d_sae == 64


SAE_DAMAGE = [
    pytest.param(
        WEIGHTS,
        "truncate",
        {},
        r"sae_weights\.safetensors is not a readable safetensors file",
        id="truncated-weights",
    ),
    pytest.param(
        WEIGHTS,
        "random",
        {},
        r"sae_weights\.safetensors is not a readable safetensors file",
        id="random-weights",
    ),
    pytest.param(WEIGHTS, "delete", {}, r"sae_weights\.safetensors is missing$", id="no-weights"),
    pytest.param(
        CFG, "not-json", {}, r"cfg\.json is not valid JSON: .* at line 1 column 14$", id="bad-json"
    ),
    pytest.param(CFG, "delete", {}, r"cfg\.json is missing$", id="no-cfg"),
    pytest.param(
        CFG,
        "edit",
        {"d_in": "32"},
        r"cfg\.json has d_in='32'; it must be a positive integer",
        id="d_in-not-an-integer",
    ),
    pytest.param(
        CFG,
        "edit",
        {"d_in": 48},
        r"sae_weights\.safetensors: W_enc has shape \[32, 64\], but cfg\.json says d_in=48, "
        r"d_sae=64, so it must be \[48, 64\] \(\[d_in, d_sae\]\)",
        id="d_in-disagrees",
    ),
    pytest.param(
        CFG,
        "edit",
        {"d_sae": 128},
        r"W_enc has shape \[32, 64\], but cfg\.json says d_in=32, d_sae=128",
        id="d_sae-disagrees",
    ),
    pytest.param(
        CFG,
        "edit",
        {"architecture": "standard"},
        r"holds threshold, which a standard SAE does not have: is the architecture in cfg\.json",
        id="extra-tensor",
    ),
    pytest.param(
        CFG,
        "edit",
        {"architecture": "gated"},
        r"has no b_gate, b_mag, r_mag; a gated SAE needs",
        id="missing-tensors",
    ),
    pytest.param(
        CFG,
        "edit",
        {"architecture": "bogus"},
        r"architecture='bogus'; sae-lens knows .*topk",
        id="unknown-architecture",
    ),
]


@pytest.mark.parametrize(("file", "how", "cfg", "message"), SAE_DAMAGE)
def test_a_corrupt_or_mismatched_sae_file_is_refused_naming_it(sae_dir, file, how, cfg, message):
    damage(sae_dir / file, how, **cfg)

    text = refused(load_sae, sae_dir, message)

    assert text.startswith(str(sae_dir))


def test_a_decoder_of_the_wrong_width_is_refused_naming_both_shapes(sae_dir):
    tensors = load_file(sae_dir / WEIGHTS)
    rewrite_tensors(sae_dir / WEIGHTS, W_dec=tensors["W_dec"][:, :16].contiguous())

    refused(
        load_sae,
        sae_dir,
        r"W_dec has shape \[64, 16\], but cfg\.json says d_sae=64, d_out=32, so it must be "
        r"\[64, 32\]",
    )


def test_a_jumprelu_threshold_of_the_wrong_length_is_refused(sae_dir):
    tensors = load_file(sae_dir / WEIGHTS)
    rewrite_tensors(sae_dir / WEIGHTS, threshold=tensors["threshold"][:63].contiguous())

    refused(load_sae, sae_dir, r"threshold has shape \[63\], .* must be \[64\] \(\[d_sae\]\)")


@pytest.mark.parametrize("name", ["threshold", "b_dec"])
def test_a_tensor_the_architecture_needs_is_missing(sae_dir, name):
    rewrite_tensors(sae_dir / WEIGHTS, **{name: None})

    refused(load_sae, sae_dir, rf"sae_weights\.safetensors has no {name}; a jumprelu SAE needs")


def test_a_sound_model_folder_still_loads(model_dir):
    assert load_model(str(model_dir), device="cpu").d_model == 32


MODEL_DAMAGE = [
    pytest.param(
        "model.safetensors",
        "truncate",
        {},
        r"model\.safetensors is not a readable safetensors",
        id="truncated-weights",
    ),
    pytest.param(
        "model.safetensors",
        "random",
        {},
        r"model\.safetensors is not a readable safetensors",
        id="random-weights",
    ),
    pytest.param(
        "model.safetensors",
        "delete",
        {},
        r"model has no model weights \(model\.safetensors",
        id="no-weights",
    ),
    pytest.param(
        "config.json",
        "not-json",
        {},
        r"config\.json is not valid JSON: .* line 1 column 14$",
        id="bad-config-json",
    ),
    pytest.param(
        "tokenizer.json", "not-json", {}, r"tokenizer\.json is not valid JSON", id="bad-tokenizer"
    ),
    pytest.param(
        "config.json",
        "edit",
        {"n_embd": 64},
        r"model: weight transformer\.h\.0\.\S+ has shape \[\d+(, \d+)?\] but config\.json "
        r"makes it \[\d+(, \d+)?\] \(and \d+ more\)$",
        id="shapes-disagree",
    ),
    pytest.param(
        "config.json",
        "edit",
        {"n_layer": 3},
        r"model: the weights lack 12 parameter\(s\) that config\.json needs: "
        r"transformer\.h\.2\.",
        id="missing-weights",
    ),
]


@pytest.mark.parametrize(("file", "how", "cfg", "message"), MODEL_DAMAGE)
def test_a_corrupt_or_mismatched_model_file_is_refused_naming_it(
    model_dir, file, how, cfg, message
):
    damage(model_dir / file, how, **cfg)

    text = refused(load_model, model_dir, message)

    assert text.startswith(str(model_dir))


def test_a_sharded_model_with_a_missing_shard_is_refused(model_dir):
    index = model_dir / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}')
    (model_dir / "model.safetensors").unlink()

    refused(load_model, model_dir, r"model-00002-of-00002\.safetensors is missing$")
