"""The engine's annotations are checked at run time during these tests (conftest.py)."""

from __future__ import annotations

import pytest
import torch
from jaxtyping import TypeCheckError

from workers.engine.sampling import token_probabilities
from workers.engine.stat_kernels import sample_hash


def test_a_tensor_of_the_wrong_rank_is_refused():
    logits = torch.zeros(5)  # [vocab], where [batch, vocab] is declared
    with pytest.raises(TypeCheckError, match="logits"):
        token_probabilities(logits, [0])


def test_tensors_sharing_a_dimension_name_must_agree():
    with pytest.raises(TypeCheckError):
        sample_hash(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), seed=0)
