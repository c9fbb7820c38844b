"""The exact primitives of the statistics: a reference hash and per-group bottom-k."""

from __future__ import annotations

import pytest
import torch

from workers.engine.stat_kernels import sample_hash, select_per_group

M64 = (1 << 64) - 1


def _splitmix_py(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def test_sample_hash_is_splitmix64_with_wrapping_arithmetic():
    keys = [0, 1, (7 << 20) | 3, (1 << 40) + 12345]
    got = sample_hash(torch.tensor(keys), torch.tensor([0, 5, 17, 24575]), seed=3).tolist()
    want = [
        _splitmix_py(_splitmix_py(k ^ 3) ^ f) >> 32
        for k, f in zip(keys, [0, 5, 17, 24575], strict=True)
    ]
    assert got == want


@pytest.mark.parametrize("offset", [0, 1 << 40])  # 1 << 40: too wide for one 64-bit sort
def test_select_per_group_keeps_the_smallest_of_each_group_and_breaks_ties_by_key(offset):
    group = torch.tensor([1, 0, 1, 1, 0, 1]) + offset
    order = torch.tensor([5, 2, 3, 3, 9, 1])
    key = torch.tensor([0, 1, 9, 4, 3, 2])
    idx = select_per_group(group, order, key, keep=2)
    assert idx.tolist() == [1, 4, 5, 3]  # group 0: orders 2, 9; group 1: 1, then 3 (key 4 < 9)
