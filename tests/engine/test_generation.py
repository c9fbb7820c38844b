"""Steered generation: reproducibility, KV cache, streaming, cancellation, bad input, goldens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from workers.engine.demo import STEERING_FEATURE
from workers.engine.generation import generate
from workers.engine.hooks import active_hook_count, intercept
from workers.engine.interventions import Intervention, SteerSpec, apply_plans, compile_plan

GOLDEN = Path(__file__).parent / "golden" / "demo_steer.json"


def greedy_without_cache(att, prompt: str, spec: SteerSpec) -> list[int]:
    """Reference decoder: the whole sequence re-run every step, no KV cache, no batching."""
    plan = compile_plan(att, spec.interventions, spec.positions)
    prompt_ids = att.lm.encode(prompt).tolist()
    ids = list(prompt_ids)
    for _ in range(spec.max_new_tokens):
        n = len(ids)
        eligible = torch.zeros(1, n, dtype=torch.bool)  # [1, pos]
        if spec.positions in ("all", "prompt"):
            eligible[0, : len(prompt_ids)] = True
        if spec.positions in ("all", "generated"):
            eligible[0, len(prompt_ids) :] = True
        with (
            torch.no_grad(),
            intercept(att.lm, att.hook_name, lambda x, e=eligible: apply_plans(x, [plan], e)),
        ):
            logits = att.lm.model(torch.tensor([ids]), use_cache=False).logits[0, -1]  # [vocab]
        kind = "prompt" if n == len(prompt_ids) else "generated"
        if plan.logit_bias is not None and plan.acts_on(kind):
            logits = logits + plan.logit_bias
        ids.append(int(torch.argmax(logits)))
        if ids[-1] == att.lm.tokenizer.eos_token_id:
            break
    return ids[len(prompt_ids) :]


def test_zero_strength_reproduces_the_unsteered_text_for_the_same_seed(tiny_att):
    sampling = {"temperature": 1.0, "top_p": 0.9, "seed": 7, "max_new_tokens": 12}
    zero = generate(
        tiny_att,
        "The cat sat",
        SteerSpec((Intervention(3, 0.0), Intervention(9, 0.0, "logit")), **sampling),
    )
    plain = generate(tiny_att, "The cat sat", SteerSpec((), **sampling))
    assert zero.steered == zero.default == plain.default == plain.steered
    assert len(zero.default.tokens) > 0


def test_the_same_seed_gives_the_same_sampled_text_and_a_new_seed_is_reported(tiny_att):
    spec = SteerSpec((Intervention(3, 4.0),), temperature=1.0, seed=123, max_new_tokens=10)
    assert generate(tiny_att, "The dog", spec) == generate(tiny_att, "The dog", spec)
    unseeded = generate(tiny_att, "The dog", SteerSpec(temperature=1.0, max_new_tokens=3))
    again = generate(
        tiny_att, "The dog", SteerSpec(temperature=1.0, max_new_tokens=3, seed=unseeded.seed)
    )
    assert again.default == unseeded.default


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_cache_and_no_cache_generations_match_greedily(tiny_att, positions):
    spec = SteerSpec(
        (Intervention(5, 6.0), Intervention(11, 3.0, "clamp"), Intervention(2, 0.5, "logit")),
        positions=positions,
        max_new_tokens=10,
    )
    result = generate(tiny_att, "The quick brown fox", spec)
    assert result.steered.tokens != result.default.tokens  # the steering does something
    assert result.steered.tokens == greedy_without_cache(tiny_att, "The quick brown fox", spec)
    assert result.default.tokens == greedy_without_cache(
        tiny_att, "The quick brown fox", SteerSpec(max_new_tokens=10)
    )


def test_text_is_the_decoded_continuation_and_the_stream_adds_up_to_it(tiny_att):
    streamed = {"default": [], "steered": []}
    result = generate(
        tiny_att,
        "She said",
        SteerSpec((Intervention(1, 5.0),), max_new_tokens=8),
        on_token=lambda row, tok, text: streamed[row].append((tok, text)),
    )
    for row in ("default", "steered"):
        got = getattr(result, row)
        assert [t for t, _ in streamed[row]] == got.tokens
        assert "".join(s for _, s in streamed[row]) == got.text == tiny_att.lm.decode(got.tokens)
    assert result.prompt_tokens == tiny_att.lm.encode("She said").tolist()


def test_cancellation_stops_within_one_step(tiny_att):
    seen = []
    result = generate(
        tiny_att,
        "The cat",
        SteerSpec(max_new_tokens=30),
        on_token=lambda row, tok, text: seen.append(row),
        cancel=lambda: len(seen) >= 4,
    )  # true after the 2nd token of each row
    assert result.cancelled
    assert len(result.default.tokens) == len(result.steered.tokens) == 2


def test_cancel_before_start_does_no_work(tiny_att):
    seen = []
    result = generate(
        tiny_att,
        "The cat",
        SteerSpec(max_new_tokens=5),
        on_token=lambda *a: seen.append(a),
        cancel=lambda: True,
    )
    assert result.cancelled and seen == [] and result.steered.tokens == []


def test_hooks_are_gone_after_an_exception_inside_the_steering_hook(tiny_att):
    def broken_encode(acts):
        raise RuntimeError("encoder exploded")

    tiny_att.encode = broken_encode  # fault injection: the clamp calls it inside the hook
    with pytest.raises(RuntimeError, match="encoder exploded"):
        generate(tiny_att, "The cat", SteerSpec((Intervention(1, 2.0, "clamp"),)))
    assert active_hook_count(tiny_att.lm) == 0


def test_an_exception_in_the_token_callback_propagates_and_leaves_no_hook(tiny_att):
    def on_token(row, tok, text):
        raise KeyError("consumer gone")

    with pytest.raises(KeyError, match="consumer gone"):
        generate(tiny_att, "The cat", SteerSpec((Intervention(1, 2.0),)), on_token=on_token)
    assert active_hook_count(tiny_att.lm) == 0


# --- bad input: a clear error before any work ----------------------------------------------


def _no_work(tiny_att, prompt, spec):
    seen = []
    try:
        generate(tiny_att, prompt, spec, on_token=lambda *a: seen.append(a))
    finally:
        assert seen == []


def test_an_unknown_feature_index_is_refused_naming_d_sae(tiny_att):
    with pytest.raises(ValueError, match=r"unknown feature index 64; this SAE has d_sae=64"):
        _no_work(tiny_att, "The cat", SteerSpec((Intervention(64, 1.0),)))


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_prompt_is_refused(tiny_att, prompt):
    with pytest.raises(ValueError, match="prompt is empty"):
        _no_work(tiny_att, prompt, SteerSpec())


def test_a_prompt_too_long_for_the_context_is_refused(tiny_att):
    n_ctx = tiny_att.lm.n_ctx
    prompt = " the" * (n_ctx - 5)
    with pytest.raises(ValueError, match=rf"max_new_tokens \(10\) exceeds .* {n_ctx} tokens"):
        _no_work(tiny_att, prompt, SteerSpec(max_new_tokens=10))
    with pytest.raises(ValueError, match="context"):
        _no_work(tiny_att, " the" * (n_ctx + 5), SteerSpec(max_new_tokens=1))


@pytest.mark.parametrize("strength", [float("nan"), float("inf")])
def test_a_non_finite_strength_is_refused_when_the_spec_is_built(strength):
    with pytest.raises(ValueError, match="strength must be finite"):
        SteerSpec.from_dict({"interventions": [{"feature": 1, "strength": strength}]})


# --- the demo model ------------------------------------------------------------------------

DEMO_PROMPT = "The jury said that the city"
DEMO_FEATURE = STEERING_FEATURE  # pulls text towards public affairs


def test_demo_zero_strength_reproduces_the_unsteered_text(demo_att):
    spec = SteerSpec((Intervention(DEMO_FEATURE, 0.0),), temperature=0.8, seed=0, max_new_tokens=16)
    result = generate(demo_att, DEMO_PROMPT, spec)
    assert result.steered == result.default


def test_demo_seeded_steered_text_matches_the_golden(demo_att):
    """Golden: tests/engine/golden/demo_steer.json (regenerate with UPDATE_GOLDEN=1 after a
    deliberate change of the demo checkpoint or the engine). Exact token match."""
    spec = SteerSpec(
        (Intervention(DEMO_FEATURE, 20.0),), temperature=0.8, top_p=0.95, seed=0, max_new_tokens=20
    )
    got = generate(demo_att, DEMO_PROMPT, spec).to_dict()
    if os.environ.get("UPDATE_GOLDEN") or not GOLDEN.exists():
        if not os.environ.get("UPDATE_GOLDEN"):
            pytest.fail(f"golden {GOLDEN} is missing; run with UPDATE_GOLDEN=1 to write it")
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            json.dumps(
                {"spec": spec.to_dict(), "prompt": DEMO_PROMPT, **got}, indent=1, ensure_ascii=False
            )
            + "\n"
        )
    golden = json.loads(GOLDEN.read_text())
    assert got["default"] == golden["default"]
    assert got["steered"] == golden["steered"]
    assert got["steered"] != got["default"]


def test_each_token_comes_with_its_probability_and_the_likeliest_alternatives(tiny_att):
    """Greedy: the chosen token is the likeliest, so it heads its own alternatives; the first
    token's probabilities are the softmax of a plain forward over the prompt."""
    spec = SteerSpec((Intervention(3, 4.0),), max_new_tokens=6, seed=0)
    result = generate(tiny_att, "A quick brown fox", spec)
    for row in (result.default, result.steered):
        assert len(row.probs) == len(row.alternatives) == len(row.tokens) == 6
        for tok, p, alts in zip(row.tokens, row.probs, row.alternatives, strict=True):
            ids, ps = zip(*alts, strict=True)
            assert len(alts) == 5 and ids[0] == tok and ps[0] == pytest.approx(p)
            assert list(ps) == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-6
    ids = tiny_att.lm.encode("A quick brown fox")[None, :]
    with torch.inference_mode():
        probs = torch.softmax(tiny_att.lm.model(ids).logits[0, -1].float(), dim=-1)
    top = torch.topk(probs, 5)
    assert [i for i, _ in result.default.alternatives[0]] == top.indices.tolist()
    assert [p for _, p in result.default.alternatives[0]] == pytest.approx(
        top.values.tolist(), abs=1e-4
    )
