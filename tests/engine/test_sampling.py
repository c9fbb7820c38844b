"""Token sampling: each row draws from its own generator; probabilities are shown rounded."""

from __future__ import annotations

import pytest
import torch

from workers.engine.sampling import (
    ALTERNATIVES,
    PROB_DECIMALS,
    sample_token,
    sample_tokens,
    token_probabilities,
)


def test_sampling_a_batch_gives_each_row_the_token_it_gets_alone():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    temps, top_ps = [0.0, 0.7, 1.0, 1.3, 0.7, 0.0], [1.0, 0.9, 1.0, 0.5, 1.0, 0.3]
    batched = sample_tokens(
        logits, temps, top_ps, [torch.Generator().manual_seed(i) for i in range(6)]
    )
    alone = [
        sample_token(logits[i], temps[i], top_ps[i], torch.Generator().manual_seed(i))
        for i in range(6)
    ]
    assert batched == alone


def test_greedy_sampling_takes_the_likeliest_token():
    logits = torch.tensor([0.1, 3.0, -1.0, 2.9])
    assert sample_token(logits, 0.0, 0.5, torch.Generator().manual_seed(0)) == 1


def test_token_probabilities_are_the_softmax_rounded_likeliest_first():
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(1))
    chosen, top = token_probabilities(logits, [3, 7])
    probs = torch.softmax(logits, dim=-1).double()
    half_unit = 0.5 * 10**-PROB_DECIMALS  # rounding moves a probability by at most this
    assert chosen == pytest.approx([float(probs[0, 3]), float(probs[1, 7])], abs=half_unit)
    assert all(round(p, PROB_DECIMALS) == p for p in chosen)
    for row, alternatives in enumerate(top):
        assert len(alternatives) == ALTERNATIVES
        assert [i for i, _ in alternatives] == probs[row].argsort(descending=True)[:5].tolist()
        assert [p for _, p in alternatives] == sorted((p for _, p in alternatives), reverse=True)
