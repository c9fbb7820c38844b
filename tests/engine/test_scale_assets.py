"""The real-shape bench assets (tests/bench/_scale_assets.py) at their mini shape: what the
`scale` and `gpu_scale` benches load must load through the engine and sae-lens, with the
recipe's shapes and calibrated densities."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.bench._scale_assets import MINI, build_scale_assets, corpus_documents
from workers.engine.hooks import run_to_hook
from workers.engine.indexing import make_windows
from workers.engine.loading import attach_sae, load_model, load_sae

pytestmark = pytest.mark.slow  # one mini build: ~15 s on two cores

MEASURE_TOKENS = 40_000


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_scale_assets(tmp_path_factory.mktemp("scale"), mini=True)


@pytest.fixture(scope="module")
def attached(assets):
    lm = load_model(str(assets.model_dir), device="cpu", dtype="fp32")
    return attach_sae(lm, load_sae(str(assets.sae_dir), device="cpu"))


def test_the_mini_model_loads_through_the_engine_with_the_recipes_shape(attached):
    lm = attached.lm
    assert (lm.n_layers, lm.d_model, lm.vocab_size) == (MINI.n_layer, MINI.n_embd, 1_000)
    assert len(lm.tokenizer) == MINI.vocab_size
    assert lm.model.config.n_head == MINI.n_head


def test_the_mini_sae_attaches_at_its_hook_with_its_width(attached):
    assert attached.hook_name == "blocks.1.hook_resid_pre"
    assert (attached.d_in, attached.d_sae) == (64, 512)


def test_the_sae_is_sae_lens_own_jumprelu(assets):
    from sae_lens import SAE
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE

    cfg = json.loads((assets.sae_dir / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"
    sae = SAE.load_from_disk(assets.sae_dir, device="cpu")
    assert isinstance(sae, JumpReLUSAE)
    assert bool((sae.threshold > 0).all())


def test_the_tokenizer_round_trips_corpus_text(attached):
    text = corpus_documents()[3][:2_000]
    ids = attached.lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert attached.lm.tokenizer.decode(ids) == text


def test_a_second_build_reuses_the_cached_assets(assets):
    again = build_scale_assets(assets.root.parent, mini=True)
    assert not again.built
    assert again.digest == assets.digest


def test_calibrated_densities_spread_log_uniformly(assets, attached):
    """Measured densities follow the targets (log-uniform over 1e-5..3e-2): where enough
    tokens are seen to measure them, each decade's median lies within 3x of its target."""
    lm = attached.lm
    windows = make_windows(lm, corpus_documents(), context=128, tokens=MEASURE_TOKENS)
    fired = torch.zeros(attached.d_sae)
    counted = 0
    with torch.inference_mode():
        for b in range(0, len(windows), 32):
            ids, real = windows.batch(list(range(b, min(b + 32, len(windows)))), 0, lm.device)
            acts = attached.encode(run_to_hook(lm, ids, real.long(), attached.hook_name))
            real[:, 0] = False  # BOS
            fired += (acts[real] > 0).sum(0)
            counted += int(real.sum())
    measured = (fired / counted).numpy()
    target = np.load(assets.target_densities_path)
    assert math.isclose(target.mean(), 3.75e-3, rel_tol=0.02)  # L0 = mean density x d_sae
    assert 0.5 < measured.mean() / target.mean() < 2
    for lo in (1e-3, 1e-2):  # decades with >= 40 expected hits per latent
        band = (target >= lo) & (target < min(lo * 10, 3e-2))
        ratio = np.median(measured[band]) / np.median(target[band])
        assert 1 / 3 < ratio < 3, (lo, ratio)
    rare = target < 1e-4
    assert np.median(measured[rare]) < 1e-3  # the rare latents stay rare


def test_the_gpu_script_dry_run_writes_every_figure(assets, tmp_path, capsys):
    from tests.bench import gpu_scale

    out = tmp_path / "gpu.jsonl"
    assert gpu_scale.main(["--dry-run", "--root", str(assets.root.parent), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert capsys.readouterr().out.splitlines() == out.read_text().splitlines()
    names = {r["name"] for r in rows}
    assert names == {
        "gpu_index_tokens_per_s",
        "gpu_index_overhead",
        "gpu_index_peak_mem_gb",
        "gpu_decode_ms_per_step_b1",
        "gpu_decode_ms_per_step_b8",
        "gpu_decode_ms_per_step_b32",
        "gpu_peak_mem_gb",
    }
    speed = next(r for r in rows if r["name"] == "gpu_index_tokens_per_s")
    assert speed["tokens"] >= gpu_scale.DRY_TOKENS and speed["value"] > 0
    assert speed["shape"] == "mini" and speed["device"] == "cpu"


def test_repeated_windows_reach_the_token_count_with_fresh_window_ids(attached):
    from tests.bench.gpu_scale import repeat_windows

    base = make_windows(attached.lm, corpus_documents()[:5], context=32, tokens=500)
    more = repeat_windows(base, 1_200)
    assert more.n_tokens >= 1_200 and len(more) == 3 * len(base)
    assert more[len(base)].token_ids.tolist() == base[0].token_ids.tolist()
