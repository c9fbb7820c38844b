"""SAE quality metrics (workers/engine/evals.py) against an independent computation.

The reference below runs each window on its own (no padding, no batching), splices and ablates
with plain PyTorch forward hooks on the HF block, and scores with sae_lens's own pieces
(``ExplainedVarianceCalculator``, ``_kl``): nothing of the engine's pass is shared with it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sae_lens.evals import ExplainedVarianceCalculator, _kl

from tests.engine.builders import build_sae
from workers.engine.constants import DEMO_DIR
from workers.engine.corpus import iter_documents
from workers.engine.evals import (
    DENSE_THRESHOLD,
    EvalCancelled,
    evaluate_sae,
    held_out_windows,
    zero_ablated_logprobs,
)
from workers.engine.indexing import Windows, make_windows
from workers.engine.loading import AttachedSAE, attach_sae

REL = 1e-4  # batched vs one-window-at-a-time fp32: summation order only


def _hooked_module(att: AttachedSAE) -> torch.nn.Module:
    """The HF module whose *output* is the hook's activation (resid_post, mlp_out only)."""
    blocks = att.lm.model.transformer.h
    point = att.hook
    assert point.kind in ("resid_post", "mlp_out")
    block = blocks[point.layer]
    return block if point.kind == "resid_post" else block.mlp


def _run(att: AttachedSAE, ids: torch.Tensor, replace=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [pos, vocab] of one unpadded window, the hook's output passed through `replace`."""
    captured = {}

    def hook(_m, _args, out):
        x = out[0] if isinstance(out, tuple) else out
        captured["x"] = x
        if replace is None:
            return None
        new = replace(x)
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = _hooked_module(att).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = att.lm.model(input_ids=ids[None]).logits[0]
    finally:
        handle.remove()
    return logits, captured["x"][0]


def reference_metrics(att: AttachedSAE, windows: Windows) -> dict[str, float]:
    """Every metric, window by window, the straightforward way."""
    special = set(att.lm.tokenizer.all_special_ids) | {att.lm.bos_token_id}
    ev = ExplainedVarianceCalculator()
    l0, n, mse = 0.0, 0, 0.0
    fired = torch.zeros(att.d_sae)
    ce = {"clean": [], "spliced": [], "zero": []}
    kls = []
    for w in range(len(windows)):
        ids = torch.from_numpy(windows[w].token_ids)  # [pos]
        keep = torch.tensor([int(t) not in special for t in ids])  # [pos]
        clean, x = _run(att, ids)
        with torch.no_grad():
            f = att.sae.encode(x)  # [pos, d_sae]
            x_hat = att.sae.decode(f)
        spliced, _ = _run(
            att, ids, lambda a, x_hat=x_hat, keep=keep: torch.where(keep[:, None], x_hat, a)
        )
        zero, _ = _run(att, ids, torch.zeros_like)
        ev.add_batch(sae_output=x_hat[keep], hidden_acts=x[keep])
        l0 += float((f[keep] != 0).sum())
        n += int(keep.sum())
        mse += float((x[keep] - x_hat[keep]).pow(2).sum())
        fired += (f[keep] != 0).sum(0)
        for name, logits in (("clean", clean), ("spliced", spliced), ("zero", zero)):
            loss = torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="none")
            ce[name].append(loss[keep[:-1]])
        kls.append(_kl(clean, spliced)[keep])
    ce_mean = {k: float(torch.cat(v).mean()) for k, v in ce.items()}
    return {
        "tokens": n,
        "l0": l0 / n,
        "explained_variance": ev.compute(),
        "mse": mse / n,
        "ce_loss_clean": ce_mean["clean"],
        "ce_loss_spliced": ce_mean["spliced"],
        "ce_loss_zero": ce_mean["zero"],
        "loss_recovered": (ce_mean["zero"] - ce_mean["spliced"])
        / (ce_mean["zero"] - ce_mean["clean"]),
        "kl_div": float(torch.cat(kls).mean()),
        "dead_fraction": float((fired == 0).float().mean()),
        "dense_fraction": float((fired / n > DENSE_THRESHOLD).float().mean()),
    }


def assert_metrics_match(got: dict, want: dict, skip: tuple[str, ...] = ()) -> None:
    assert got["tokens"] == want["tokens"]
    for key, value in want.items():
        if key not in skip:
            assert got[key] == pytest.approx(value, rel=REL, abs=1e-6), key


_WINDOWS: dict[str, Windows] = {}  # tokenizing the held-out split takes seconds: once per run


@pytest.fixture
def demo_windows(demo_att) -> Windows:
    """About 1,500 held-out demo tokens, the last window short (so batches are padded)."""
    if "val" not in _WINDOWS:
        _WINDOWS["val"] = held_out_windows(demo_att, iter_documents("demo:val"), tokens=1_500)
    return _WINDOWS["val"]


def test_every_metric_matches_a_window_by_window_reference_on_the_demo(demo_att, demo_windows):
    assert demo_windows.lengths().min() < demo_windows.context  # padding is exercised
    got = evaluate_sae(demo_att, demo_windows, batch_size=4).to_dict()
    assert_metrics_match(got, reference_metrics(demo_att, demo_windows))


def test_the_batch_size_does_not_change_the_metrics(demo_att, demo_windows):
    one = evaluate_sae(demo_att, demo_windows, batch_size=1).to_dict()
    many = evaluate_sae(demo_att, demo_windows, batch_size=16).to_dict()
    assert_metrics_match(many, one)


def test_a_loss_budget_scores_losses_on_the_first_batches_and_the_rest_on_every_token(
    demo_att, demo_windows
):
    whole = evaluate_sae(demo_att, demo_windows, batch_size=2).to_dict()
    part = evaluate_sae(demo_att, demo_windows, batch_size=2, loss_tokens=500).to_dict()
    reconstruction = ("tokens", "l0", "explained_variance", "mse", "dead_fraction")
    for key in reconstruction + ("dense_fraction",):
        assert part[key] == pytest.approx(whole[key], rel=REL, abs=1e-6), key
    assert 0 < part["loss_tokens"] < whole["loss_tokens"] == whole["tokens"]
    # the budget's losses are those of its own windows scored alone
    k = 0  # windows of the batches (of 2) that start before position 500
    while demo_windows.offsets[k] < 500:
        k += 2
    first = Windows(
        demo_windows.tokens[: demo_windows.offsets[k]],
        demo_windows.offsets[: k + 1],
        demo_windows.doc[:k],
        demo_windows.start[:k],
        has_bos=demo_windows.has_bos,
        context=demo_windows.context,
    )
    alone = evaluate_sae(demo_att, first, batch_size=2, loss_tokens=None).to_dict()
    assert part["loss_tokens"] == alone["tokens"]
    for key in ("ce_loss_clean", "ce_loss_spliced", "ce_loss_zero", "kl_div"):
        assert part[key] == pytest.approx(alone[key], rel=REL, abs=1e-6), key
    none = evaluate_sae(demo_att, demo_windows, batch_size=2, loss_tokens=0).to_dict()
    assert none["loss_tokens"] == 0 and math.isnan(none["kl_div"])
    assert none["explained_variance"] == pytest.approx(whole["explained_variance"], rel=REL)
    with pytest.raises(ValueError, match="loss_tokens"):
        evaluate_sae(demo_att, demo_windows, loss_tokens=-1)


def test_at_a_non_residual_hook_the_zero_ablated_rows_run_in_the_batch(tiny_lm):
    att = attach_sae(tiny_lm, build_sae(tiny_lm.d_model, hook_name="blocks.0.hook_mlp_out"))
    assert zero_ablated_logprobs(att) is None
    docs = ["the cat sat on the mat and then it ran away " * 4, "a dog barked twice", "hello"]
    windows = make_windows(tiny_lm, docs, context=16, tokens=120)
    got = evaluate_sae(att, windows, batch_size=3).to_dict()
    # A random model barely needs its MLP: CE_zero - CE_clean is tiny, so loss recovered
    # amplifies rounding; it is checked through the losses it is made of.
    assert_metrics_match(got, reference_metrics(att, windows), skip=("loss_recovered",))
    ce_c, ce_s, ce_z = got["ce_loss_clean"], got["ce_loss_spliced"], got["ce_loss_zero"]
    assert got["loss_recovered"] == pytest.approx((ce_z - ce_s) / (ce_z - ce_c))


def test_zero_ablating_the_residual_stream_gives_one_distribution_everywhere(demo_att):
    """What lets the pass skip the ablated rows at resid hooks: the same log-probs at every
    position of every input."""
    lp = zero_ablated_logprobs(demo_att)
    ids = torch.from_numpy(make_windows(demo_att.lm, ["Some text, then more."], tokens=20).tokens)
    logits, _ = _run(demo_att, ids.long(), torch.zeros_like)
    torch.testing.assert_close(torch.log_softmax(logits, -1), lp.expand_as(logits))


@pytest.mark.slow  # evaluates the demo SAE on its held-out split: seconds
def test_the_demo_sae_scores_as_its_recipe_recorded(demo_att):
    """Explained variance, L0 and MSE were measured on other held-out activations (random
    windows of the same split) when the SAE was trained; the losses on other windows too."""
    recorded = json.loads((DEMO_DIR / "recipe.json").read_text())
    windows = held_out_windows(demo_att, iter_documents("demo:val"), tokens=20_000)
    m = evaluate_sae(demo_att, windows, batch_size=16)
    assert m.explained_variance == pytest.approx(recorded["sae"]["explained_variance"], abs=0.02)
    assert m.l0 == pytest.approx(recorded["sae"]["l0"], abs=0.5)
    assert m.mse == pytest.approx(recorded["sae"]["mse"], rel=0.1)
    assert m.ce_loss_clean == pytest.approx(recorded["model"]["val_loss"], abs=0.15)
    assert m.ce_loss_spliced == pytest.approx(recorded["sae"]["spliced_val_loss"], abs=0.15)
    assert m.loss_recovered > 0.9 and m.dead_fraction < 0.05


def test_a_sae_whose_decoder_is_zeroed_recovers_no_loss(demo_att, demo_windows):
    with torch.no_grad():
        demo_att.sae.W_dec.zero_()
        demo_att.sae.b_dec.zero_()
    m = evaluate_sae(demo_att, demo_windows, batch_size=8)
    # Not exactly 0: the spliced rows keep BOS's clean activation (as SAELens does) while
    # the ablated ones zero it too; that one position is worth ~7% here.
    assert m.loss_recovered == pytest.approx(0.0, abs=0.1)
    assert m.explained_variance < 0.0  # x̂ = 0 explains less than the mean would


def test_progress_reaches_the_total_and_cancel_stops_before_a_batch(demo_att, demo_windows):
    seen = []
    evaluate_sae(demo_att, demo_windows, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (demo_windows.n_tokens, demo_windows.n_tokens)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(EvalCancelled, match="after 0 of"):
        evaluate_sae(demo_att, demo_windows, cancel=lambda: True)


@pytest.mark.parametrize("bad", [0, -1, True])
def test_it_rejects_a_bad_batch_size(demo_att, demo_windows, bad):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_sae(demo_att, demo_windows, batch_size=bad)


def test_held_out_windows_start_after_the_skipped_tokens(demo_att):
    docs = list(iter_documents("demo:val"))[:20]
    whole = held_out_windows(demo_att, docs, tokens=3_000)
    tail = held_out_windows(demo_att, docs, tokens=1_000, skip_tokens=1_000)
    first = int(np.searchsorted(whole.offsets, 1_000))
    assert whole.offsets[first] >= 1_000
    np.testing.assert_array_equal(tail[0].token_ids, whole[first].token_ids)
    assert tail.n_tokens <= 1_000 + whole.context and tail[0].has_bos
    with pytest.raises(ValueError, match="no tokens left"):
        held_out_windows(demo_att, docs[:1], tokens=10, skip_tokens=10**7)


def test_loss_recovered_is_nan_when_ablation_costs_nothing():
    from workers.engine.evals import _Sums

    sums = _Sums(2, 3, torch.device("cpu"))
    sums.reconstruction(torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 3))
    sums.n_ce = sums.n_loss = 2
    sums.scalars[2:5] = 3.0  # CE clean = spliced = zero-ablated
    m = sums.metrics()
    assert math.isnan(m.loss_recovered) and m.ce_loss_zero == 1.5
