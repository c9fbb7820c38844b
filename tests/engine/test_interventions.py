"""Intervention specs (wire format, validation, registry) and the steering math at the hook.

Residual checks record the hook's activation twice in the same forward pass: at the SAE hook
(blocks.0.hook_resid_post, before the steering hook runs) and at the input of the next block
(after it). Their difference is exactly what steering wrote. Tolerance: float32 round-off,
atol 1e-5 on residuals of norm ~1, 1e-4 on re-encoded feature values.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch
from torch.testing import assert_close

from tests.engine.builders import build_sae
from workers.engine.facts import logit_effects
from workers.engine.generation import generate
from workers.engine.hooks import intercept
from workers.engine.interventions import (
    FeatureStats,
    compile_plan,
    logit_direction,
    register_intervention,
)
from workers.engine.loading import attach_sae
from workers.engine.specs import Intervention, SteerSpec

HOOK = "blocks.0.hook_resid_post"
AFTER = "blocks.1.hook_resid_pre"  # the same tensor, seen after the steering hook


def tied_sae(d_in: int, d_sae: int = 16):
    """Orthonormal decoder rows, W_enc = W_dec.T and a large b_enc: every feature is active
    and linear, so f(x + δ·d_f) = f(x) + δ and a clamp must re-encode to its target."""
    sae = build_sae(d_in, d_sae, hook_name=HOOK)
    q, _ = torch.linalg.qr(torch.randn(d_in, d_sae))  # [d_in, d_sae], orthonormal columns
    with torch.no_grad():
        sae.W_dec.copy_(q.T)
        sae.W_enc.copy_(q)
        sae.b_dec.zero_()
        sae.b_enc.fill_(10.0)
    return sae


def steered_residuals(att, spec: SteerSpec, prompt: str = "The cat sat", **kw):
    """(before, after) activations at the SAE hook for every forward pass of `generate`;
    row 0 = default, row 1 = steered; entry 0 is the prefill, then one per decode step."""
    before, after = [], []
    with ExitStack() as stack:
        stack.enter_context(intercept(att.lm, HOOK, lambda x: before.append(x.clone())))
        stack.enter_context(intercept(att.lm, AFTER, lambda x: after.append(x.clone())))
        result = generate(att, prompt, spec, **kw)
    return before, after, result


# --- compiling ---------------------------------------------------------------------------


def test_an_unknown_feature_index_names_d_sae(tiny_att):
    with pytest.raises(ValueError, match="d_sae=64"):
        compile_plan(tiny_att, [Intervention(64, 1.0)])


def test_mean_and_resample_ablation_need_feature_stats(tiny_att):
    with pytest.raises(ValueError, match="mean ablation of feature 2 needs FeatureStats.mean"):
        compile_plan(tiny_att, [Intervention(2, 0.0, "ablate", "mean")])
    with pytest.raises(ValueError, match="resample ablation of feature 2 needs FeatureStats"):
        compile_plan(tiny_att, [Intervention(2, 0.0, "ablate", "resample")], stats={})


def test_zero_strength_add_and_logit_compile_to_nothing(tiny_att):
    plan = compile_plan(tiny_att, [Intervention(1, 0.0, "add"), Intervention(2, 0.0, "logit")])
    assert plan.is_noop


def test_logit_bias_needs_no_hook_and_equals_the_facts_logit_effect(tiny_att):
    plan = compile_plan(tiny_att, [Intervention(7, 2.5, "logit")])
    assert not plan.needs_hook
    top_ids, top_vals, _, _ = logit_effects(tiny_att, k=5)
    assert_close(plan.logit_bias[top_ids[7]] / 2.5, top_vals[7], rtol=1e-5, atol=1e-6)
    assert_close(plan.logit_bias, 2.5 * logit_direction(tiny_att, 7))


# --- the math at the hook ------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_add_shifts_the_residual_by_exactly_s_d_f_at_the_chosen_positions_only(tiny_lm, positions):
    att = attach_sae(tiny_lm, build_sae(tiny_lm.d_model, hook_name=HOOK))
    spec = SteerSpec((Intervention(5, 3.0),), positions=positions, max_new_tokens=4)
    before, after, _ = steered_residuals(att, spec)
    assert len(before) == len(after) >= 2
    d_f = att.decoder_directions[5]  # [d_model]
    for step, (x, y) in enumerate(zip(before, after, strict=True)):
        kind = "prompt" if step == 0 else "generated"
        shift = y - x  # [2, pos, d_model]
        assert_close(shift[0], torch.zeros_like(shift[0]), rtol=0, atol=0)  # default row
        expected = 3.0 * d_f if positions in ("all", kind) else torch.zeros_like(d_f)
        assert_close(shift[1], expected.expand_as(shift[1]), rtol=0, atol=1e-5)


def test_a_vector_adds_s_times_its_values_beside_a_feature(tiny_lm):
    att = attach_sae(tiny_lm, build_sae(tiny_lm.d_model, hook_name=HOOK))
    v = torch.linspace(-1, 1, tiny_lm.d_model)  # [d_model]
    spec = SteerSpec(
        (Intervention(5, 3.0), Intervention(1, -2.0, "vector", values=tuple(v.tolist()))),
        max_new_tokens=3,
    )
    before, after, _ = steered_residuals(att, spec)
    expected = 3.0 * att.decoder_directions[5] - 2.0 * v  # [d_model]
    for x, y in zip(before, after, strict=True):
        shift = y - x  # [2, pos, d_model]
        assert_close(shift[1], expected.expand_as(shift[1]), rtol=0, atol=1e-5)


def test_a_vector_of_the_wrong_width_names_the_hook_width(tiny_att):
    bad = Intervention(1, 1.0, "vector", values=(1.0, 2.0))
    with pytest.raises(ValueError, match="has 2 values; the SAE's hook has d_in="):
        compile_plan(tiny_att, [bad])


def test_registering_a_mode_twice_or_outside_the_contract_is_refused():
    with pytest.raises(ValueError, match="'clamp' is already registered"):
        register_intervention("clamp", lambda iv, ctx, plan: None)
    with pytest.raises(ValueError, match="not in specs.MODES"):
        register_intervention("boost", lambda iv, ctx, plan: None)


def test_clamp_writes_c_minus_f_times_d_f_and_keeps_the_error_term(tiny_lm):
    att = attach_sae(tiny_lm, build_sae(tiny_lm.d_model, hook_name=HOOK))
    before, after, _ = steered_residuals(
        att, SteerSpec((Intervention(5, 2.0, "clamp"),), max_new_tokens=3)
    )
    d_f = att.decoder_directions[5]
    for x, y in zip(before, after, strict=True):
        f = att.encode(x[1])[:, 5]  # [pos]
        assert_close(y[1] - x[1], (2.0 - f)[:, None] * d_f, rtol=0, atol=1e-5)


def test_clamp_re_encodes_to_c(tiny_lm):
    att = attach_sae(tiny_lm, tied_sae(tiny_lm.d_model))
    _, after, _ = steered_residuals(
        att, SteerSpec((Intervention(3, 4.0, "clamp"),), max_new_tokens=3)
    )
    for y in after:
        feats = att.encode(y[1])  # [pos, d_sae]
        assert_close(feats[:, 3], torch.full_like(feats[:, 3], 4.0), rtol=0, atol=1e-4)
        assert not torch.allclose(att.encode(y[0])[:, 3], feats[:, 3])  # default row untouched


def test_zero_ablation_re_encodes_to_zero(tiny_lm):
    att = attach_sae(tiny_lm, tied_sae(tiny_lm.d_model))
    _, after, _ = steered_residuals(
        att, SteerSpec((Intervention(3, 0.0, "ablate"),), max_new_tokens=3)
    )
    for y in after:
        assert_close(att.encode(y[1])[:, 3], torch.zeros(y.shape[1]), rtol=0, atol=1e-4)


def test_mean_ablation_re_encodes_to_the_feature_mean(tiny_lm):
    att = attach_sae(tiny_lm, tied_sae(tiny_lm.d_model))
    spec = SteerSpec((Intervention(3, 0.0, "ablate", "mean"),), max_new_tokens=2)
    _, after, _ = steered_residuals(att, spec, stats={3: FeatureStats(mean=0.75)})
    for y in after:
        assert_close(att.encode(y[1])[:, 3], torch.full((y.shape[1],), 0.75), rtol=0, atol=1e-4)


def test_resample_ablation_re_encodes_to_one_of_the_samples(tiny_lm):
    att = attach_sae(tiny_lm, tied_sae(tiny_lm.d_model))
    spec = SteerSpec((Intervention(3, 0.0, "ablate", "resample"),), max_new_tokens=2, seed=1)
    _, after, _ = steered_residuals(att, spec, stats={3: FeatureStats(samples=[1.0, 2.0, 5.0])})
    for y in after:
        values = att.encode(y[1])[:, 3]  # [pos]
        nearest = torch.tensor([1.0, 2.0, 5.0])[
            (values[:, None] - torch.tensor([1.0, 2.0, 5.0])).abs().argmin(-1)
        ]
        assert_close(values, nearest, rtol=0, atol=1e-4)


def test_a_huge_logit_bias_makes_its_top_token_win_every_step(tiny_att):
    top = int(torch.argmax(logit_direction(tiny_att, 7)))
    spec = SteerSpec((Intervention(7, 1e4, "logit"),), max_new_tokens=5)
    result = generate(tiny_att, "The cat sat", spec)
    assert result.steered.tokens == [top] * len(result.steered.tokens)
    assert result.default.tokens != result.steered.tokens
