"""Contrastive activation addition and the decomposition of a vector into SAE features."""

from __future__ import annotations

import pytest
import torch

from tests.engine.builders import build_sae
from workers.engine.caa import caa_vector, decompose, nnls
from workers.engine.hooks import intercept, run_to_hook
from workers.engine.loading import attach_sae

PROMPTS = [
    "The cat sat on the",
    "She said that the",
    "A quick brown fox and the",
    "Numbers like one and",
]


def last_token(lm, text):
    return int(lm.encode(text)[-1])


CANDIDATES = [" good", " bad", " the", " and", " of", " a", " x", " y", " is", " was", "."]


def one_token_completions(lm) -> tuple[str, str]:
    """Two completions that add exactly one token after every prompt (any tokenizer)."""
    ok = [
        c
        for c in CANDIDATES
        if all(len(lm.encode(p + c)) == len(lm.encode(p)) + 1 for p in PROMPTS)
    ]
    assert len(ok) >= 2, "the test tokenizer splits every candidate completion"
    return ok[0], ok[1]


def plant(lm, direction):
    """Make the embeddings of the two completions' last tokens differ by exactly ``direction``."""
    positive, negative = one_token_completions(lm)
    a = {last_token(lm, p + positive) for p in PROMPTS}
    b = {last_token(lm, p + negative) for p in PROMPTS}
    assert len(a) == len(b) == 1 and a != b, "completions must end in one fixed token each"
    wte = lm.model.transformer.wte.weight
    with torch.no_grad():
        wte[a.pop()] = wte[b.pop()] + direction
    return [(p, positive, negative) for p in PROMPTS]


def test_a_planted_direction_is_recovered_exactly_at_the_embedding(tiny_lm):
    direction = torch.randn(tiny_lm.d_model)
    triples = plant(tiny_lm, direction)
    for p, pos, neg in triples:  # same length, so position embeddings cancel
        assert len(tiny_lm.encode(p + pos)) == len(tiny_lm.encode(p + neg))
    vector = caa_vector(tiny_lm, "blocks.0.hook_resid_pre", triples)
    torch.testing.assert_close(vector, direction, rtol=1e-4, atol=1e-5)


def test_a_planted_direction_survives_a_block(tiny_lm):
    direction = torch.randn(tiny_lm.d_model) * 3
    vector = caa_vector(tiny_lm, "blocks.0.hook_resid_post", plant(tiny_lm, direction))
    assert torch.cosine_similarity(vector, direction, dim=0) > 0.9


def test_caa_is_the_mean_last_token_difference_even_with_unequal_lengths(tiny_lm):
    triples = [("The cat", " sat on the mat", " ran"), ("A dog", " barked", " slept all day")]
    hook = "blocks.1.hook_resid_post"

    def last(text):
        return run_to_hook(tiny_lm, tiny_lm.encode(text)[None], None, hook)[0, -1]

    expected = torch.stack([last(p + a) - last(p + b) for p, a, b in triples]).mean(0)
    torch.testing.assert_close(
        caa_vector(tiny_lm, hook, triples, batch_size=4), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    "triples",
    [
        [],
        [("The cat", "", " ran")],
        [("The cat", " sat", " sat")],
        [("The cat", " sat")],
    ],
)
def test_bad_triples_are_refused_before_any_forward_pass(tiny_lm, triples):
    calls = []
    with intercept(tiny_lm, "blocks.0.hook_resid_pre", calls.append), pytest.raises(ValueError):
        caa_vector(tiny_lm, "blocks.1.hook_resid_post", triples)
    assert calls == []


def test_a_planted_combination_of_features_is_decomposed(tiny_att):
    rows = tiny_att.decoder_directions.detach()
    vector = 2.0 * rows[3] + 1.0 * rows[10]
    result = decompose(tiny_att, vector, k=5)
    assert set(result.features[:2]) == {3, 10}
    weights = dict(zip(result.features, result.weights, strict=True))
    assert weights[3] == pytest.approx(2.0, abs=1e-3) and weights[10] == pytest.approx(
        1.0, abs=1e-3
    )
    assert result.residual_fraction < 1e-3
    assert result.cosines == sorted(result.cosines, reverse=True)


def test_caa_on_a_planted_feature_decomposes_to_that_feature(tiny_lm):
    att = attach_sae(tiny_lm, build_sae(tiny_lm.d_model, hook_name="blocks.0.hook_resid_pre"))
    direction = att.decoder_directions.detach()[5] * 4
    vector = caa_vector(tiny_lm, att.hook_name, plant(tiny_lm, direction))
    result = decompose(att, vector, k=3)
    assert result.features[0] == 5 and result.cosines[0] == pytest.approx(1.0, abs=1e-4)


def test_decompose_refuses_a_vector_of_the_wrong_width(tiny_att):
    with pytest.raises(ValueError, match=r"width 31.*d_in is 32"):
        decompose(tiny_att, torch.randn(31))


def test_decompose_refuses_a_zero_vector(tiny_att):
    with pytest.raises(ValueError, match="zero"):
        decompose(tiny_att, torch.zeros(32))


def test_nnls_matches_the_unconstrained_solution_when_it_is_non_negative():
    a = torch.randn(20, 4, dtype=torch.float64)
    x = torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=torch.float64)
    torch.testing.assert_close(nnls(a, a @ x), x, rtol=1e-5, atol=1e-6)


def test_nnls_never_returns_negative_weights():
    a = torch.eye(3)
    assert nnls(a, torch.tensor([1.0, -2.0, 3.0])).tolist() == [1.0, 0.0, 3.0]
