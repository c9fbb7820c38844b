"""Steering showcases (workers/engine/showcases.py) on the demo model: a decoder direction built
to raise given tokens scores above a random one, and the fluency floors exclude degenerate
steering however much it raises its tokens."""

from __future__ import annotations

import copy

import pytest
import torch

from workers.engine.hooks import active_hook_count, intercept
from workers.engine.loading import attach_sae, load_sae
from workers.engine.showcases import (
    Candidate,
    CandidateScore,
    ShowcaseSettings,
    pick_showcases,
    score_candidates,
    top_logit_tokens,
)

WORDS = (" water", " river", " sea", " rain")
BUILT, RANDOM = 0, 1  # the demo SAE's features 0 and 1, their decoder rows replaced
SETTINGS = ShowcaseSettings(max_new_tokens=16)
PROMPTS = ("I think that", "Yesterday we went to")


def _raising_direction(lm, tokens: list[int]) -> torch.Tensor:
    """The unit direction at the SAE's hook that most raises log P(tokens) on a short text,
    to first order: minus the gradient of the loss with respect to an added vector."""
    ids = lm.encode("I think that the best thing about the city is that we went to")[None]
    v = torch.zeros(lm.d_model, requires_grad=True)
    hook = intercept(lm.model, "blocks.1.hook_resid_post", lambda x: x + v)
    with torch.enable_grad(), hook:
        lp = torch.log_softmax(lm.model(input_ids=ids).logits, -1)[0, :, tokens]  # [pos, k]
        (-torch.logsumexp(lp, -1).mean()).backward()
    return -v.grad / v.grad.norm()


@pytest.fixture(scope="module")
def built(_demo_lm_cached):
    """The demo SAE with feature BUILT pointing where WORDS become likely and feature RANDOM
    a random unit direction; returns (attached SAE, the WORDS' token ids)."""
    lm = copy.deepcopy(_demo_lm_cached)
    tokens = [lm.encode(w, prepend_bos=False).tolist()[0] for w in WORDS]
    sae = load_sae("demo", device="cpu")
    with torch.no_grad():
        sae.W_dec[BUILT] = _raising_direction(lm, tokens)
        r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
        sae.W_dec[RANDOM] = r / r.norm()
    return attach_sae(lm, sae), tokens


@pytest.fixture(scope="module")
def scores(built):
    """(feature, strength) -> CandidateScore, both features scored on WORDS."""
    att, tokens = built
    cands = [Candidate(f, s) for f in (BUILT, RANDOM) for s in (0.0, 4.0, 64.0)]
    got = score_candidates(
        att, cands, PROMPTS, targets={BUILT: tokens, RANDOM: tokens}, settings=SETTINGS
    )
    return {(c.feature, c.strength): c for c in got}


def test_a_direction_built_to_raise_tokens_scores_above_a_random_one(scores):
    built, random = scores[(BUILT, 4.0)], scores[(RANDOM, 4.0)]
    assert built.effect > random.effect + 1.0
    assert built.qualifies and not random.qualifies


def test_the_fluency_floor_excludes_degenerate_steering(scores):
    degenerate = scores[(BUILT, 64.0)]
    # It raises the tokens most of all (the text is mostly " water") ...
    assert degenerate.effect > scores[(BUILT, 4.0)].effect
    # ... but reads far worse than the unsteered text and repeats itself: excluded.
    assert degenerate.fluency_drop > SETTINGS.max_fluency_drop
    assert degenerate.distinct < SETTINGS.min_distinct
    assert not degenerate.qualifies


def test_each_feature_is_shown_at_its_best_qualifying_strength(scores):
    picked = pick_showcases(list(scores.values()), 5)
    assert [(p.feature, p.strength) for p in picked] == [(BUILT, 4.0)]
    best = picked[0]
    assert best.best_prompt is not None
    assert best.prompts[best.best_prompt].text != best.prompts[best.best_prompt].default_text


def test_zero_strength_reproduces_the_unsteered_text_and_scores_zero(scores):
    zero = scores[(BUILT, 0.0)]
    assert zero.effect == 0.0 and zero.fluency_drop == 0.0
    assert all(p.text == p.default_text for p in zero.prompts)


def test_without_targets_a_feature_is_judged_on_its_top_logit_tokens(built):
    att, _ = built
    (got,) = score_candidates(att, [Candidate(5, 4.0)], PROMPTS[:1], settings=SETTINGS)
    own = top_logit_tokens(att, [5], SETTINGS.top_tokens)[5]
    (again,) = score_candidates(
        att, [Candidate(5, 4.0)], PROMPTS[:1], targets={5: own}, settings=SETTINGS
    )
    assert got.effect == pytest.approx(again.effect)


def test_rows_decode_in_batches_of_any_size_with_the_same_texts(built):
    att, tokens = built
    cands = [Candidate(BUILT, 4.0), Candidate(RANDOM, 4.0)]
    one = score_candidates(att, cands, PROMPTS, targets={0: tokens, 1: tokens}, settings=SETTINGS)
    small = ShowcaseSettings(max_new_tokens=16, batch_size=2)
    two = score_candidates(att, cands, PROMPTS, targets={0: tokens, 1: tokens}, settings=small)
    assert [p.text for c in one for p in c.prompts] == [p.text for c in two for p in c.prompts]


def test_no_candidates_score_nothing(built):
    assert score_candidates(built[0], [], PROMPTS, settings=SETTINGS) == []


def test_no_hook_is_left_on_the_model(built, scores):
    assert active_hook_count(built[0].lm) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": []}, "at least one prompt"),
        ({"prompts": ["  "]}, "at least one prompt"),
        ({"candidates": [Candidate(99_999, 1.0)]}, "d_sae"),
        ({"targets": {BUILT: []}}, "target token"),
    ],
)
def test_bad_input_is_refused_by_name(built, kwargs, message):
    args = {"candidates": [Candidate(BUILT, 1.0)], "prompts": PROMPTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        score_candidates(built[0], args.pop("candidates"), args.pop("prompts"), **args)


def test_pick_showcases_keeps_one_strength_per_feature_by_effect():
    def score(f, s, effect, ok=True):
        return CandidateScore(f, s, effect, 0.0, 1.0, ok, 0 if ok else None)

    picked = pick_showcases(
        [score(1, 2.0, 3.0), score(1, 4.0, 5.0), score(2, 2.0, 4.0), score(3, 8.0, 9.0, ok=False)],
        5,
    )
    assert [(p.feature, p.strength) for p in picked] == [(1, 4.0), (2, 2.0)]
    assert len(pick_showcases([score(f, 1.0, f) for f in range(9)], 3)) == 3
