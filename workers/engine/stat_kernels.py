"""Exact building blocks of the feature statistics: token keys, hashes, grids, bottom-k.

Everything here is deterministic and order-free, which is what lets shards merge exactly
(see :mod:`.stats`): keys and hashes are integers, grid cells are read off float32 bit
patterns (integer comparisons, no rounding at edges), and selection breaks every tie.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

POS_BITS = 20  # token key = window << POS_BITS | pos
QUANTILE_BINS_PER_OCTAVE = 16
Q_SHIFT = 23 - 4  # float32 mantissa bits dropped for the quantile grid (16 = 2^4 per octave)
HASH_MAX = (1 << 32) - 1


def token_key(window: Tensor, pos: Tensor) -> Tensor:
    """The int64 key ordering tokens by (window, pos); ties in value are broken by it."""
    return (window.long() << POS_BITS) | pos.long()


def position_first(key: Tensor) -> Tensor:
    """A token key reordered to sort by (pos, window): ``pos << 43 | window`` (windows < 2^43)."""
    return ((key & ((1 << POS_BITS) - 1)) << 43) | (key >> POS_BITS)


# ---- deterministic hashing (splitmix64 on wrapping int64) -------------------------------------


def _i64(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLD, _C1, _C2 = _i64(0x9E3779B97F4A7C15), _i64(0xBF58476D1CE4E5B9), _i64(0x94D049BB133111EB)


def _srl(x: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 (torch shifts arithmetically)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _splitmix(x: Tensor) -> Tensor:
    x = x + _GOLD
    x = (x ^ _srl(x, 30)) * _C1
    x = (x ^ _srl(x, 27)) * _C2
    return x ^ _srl(x, 31)


def sample_hash(key: Int[Tensor, " n"], feature: Int[Tensor, " n"], seed: int) -> Tensor:
    """A 32-bit pseudo-random priority for each (token key, feature), fixed by ``seed``."""
    return _srl(_splitmix(_splitmix(key ^ _i64(seed & (2**64 - 1))) ^ feature), 32)


# ---- bins from float32 bit patterns -----------------------------------------------------------


def grid_key(v: Float[Tensor, "*shape"], shift: int) -> Int[Tensor, "*shape"]:
    """Monotone grid cell of positive float32 values: exponent and top mantissa bits."""
    return v.float().contiguous().view(torch.int32).long() >> shift


def grid_edge(k: Int[Tensor, "*shape"], shift: int) -> Float[Tensor, "*shape"]:
    """Lower edge (float32, exact) of grid cell ``k``."""
    return (k << shift).to(torch.int32).view(torch.float32)


def quantile_bounds(mx: Float[Tensor, " d_sae"], n: int) -> Float[Tensor, "d_sae n_plus_1"]:
    """Bin bounds [0, b_1, ..., b_{n-1}, max]: b_k = k·max/n snapped down onto the fine grid.

    Bin 0 is (0, b_1); bin k is [b_k, b_{k+1}); the last bin also includes max.
    """
    k = torch.arange(1, n, device=mx.device, dtype=torch.float32)
    target = (mx.float()[:, None] * k) / n  # [F, n-1] float32
    inner = grid_edge(grid_key(target, Q_SHIFT), Q_SHIFT)  # [F, n-1]
    zero = torch.zeros_like(mx, dtype=torch.float32)[:, None]
    return torch.cat([zero, inner, mx.float()[:, None]], dim=1)  # [F, n+1]


def quantile_floor(mx: Float[Tensor, " d_sae"], n: int) -> Int[Tensor, " d_sae"]:
    """Grid cell of b_1: cells strictly below it can only ever be in bin 0."""
    return grid_key((mx.float() * 1.0) / n, Q_SHIFT)


def positive_indices(flat: Float[Tensor, " n"]) -> Int[Tensor, " nnz"]:
    """Indices of the entries > 0 (numpy's scan is ~2x torch's nonzero() on CPU)."""
    if flat.device.type == "cpu":
        if flat.dtype not in (torch.float16, torch.float32, torch.float64):
            flat = flat.float()  # numpy has no bfloat16
        return torch.from_numpy(np.flatnonzero(flat.numpy() > 0))
    return (flat > 0).nonzero().squeeze(1)


# ---- bottom-k per group -----------------------------------------------------------------------


def select_per_group(group: Tensor, order: Tensor, key: Tensor, keep: int) -> Tensor:
    """Indices of the ``keep`` smallest (order, key) entries of every group.

    All three are non-negative int64; returned sorted by (group, order, key). Sorts least
    significant first; (group, order) share one 64-bit sort when they fit in 31 + 32 bits.
    """
    if group.numel() == 0:
        return group
    idx = torch.sort(key).indices  # equal keys only occur in different groups
    if int(group.max()) < 1 << 31 and int(order.max()) < 1 << 32:
        comp = (group << 32) | order
        idx = idx.index_select(0, torch.sort(comp.index_select(0, idx), stable=True).indices)
    else:
        idx = idx.index_select(0, torch.sort(order.index_select(0, idx), stable=True).indices)
        idx = idx.index_select(0, torch.sort(group.index_select(0, idx), stable=True).indices)
    return idx[rank_in_group(group.index_select(0, idx)) < keep]


def rank_in_group(g: Tensor) -> Tensor:
    """0, 1, 2, ... within runs of equal values of a sorted group vector."""
    n = g.numel()
    start = torch.ones(n, dtype=torch.bool, device=g.device)
    start[1:] = g[1:] != g[:-1]
    pos = torch.arange(n, device=g.device)
    return pos - torch.cummax(torch.where(start, pos, 0), 0).values


def desc_order(v: Tensor) -> Tensor:
    """Ascending sort key for descending positive float32 values."""
    return 0x7FFFFFFF - v.float().contiguous().view(torch.int32).long()
