"""Per-token values of the chosen examples without a second forward pass.

A dashboard example is a whole window with the feature's value at every token. Choosing the
examples needs the whole corpus (top-K and quantile samples merge across shards), so a naive
pipeline runs the model twice: once for statistics, once more over the chosen windows. With
~55 examples per feature, nearly every window of a corpus is chosen by *some* feature, so the
second pass costs as much as the first (measured: index_overhead ~2.3 instead of ~1.2).

Instead the shard's pass keeps an :class:`ActivationLog` of counted non-zero
``(feature, token, value)`` *in memory* (SAE codes are sparse: L0 entries per token, ~16 bytes
each; never written to disk): every non-zero of the (feature, window) pairs that put a token
into the accumulator's pools in their batch (the others can never be chosen; ~40% of all
non-zeros on the demo). After the pass, :meth:`ActivationLog.candidates` keeps only the
entries of (feature, window) pairs still in the accumulator's pools: the final choice after any
merge is a subset of the union of the shards' pools (top-K by a total order; per-cell
smallest-hash samples), so this :class:`CandidateValues` table is all the finish step needs.
Tables of disjoint shards concatenate. A run of one shard needs only the pairs its own
``finalize`` chooses (:func:`chosen_entries`).

Entries are the (feature, window) pairs the accumulator ranks (see :mod:`.stats`). Excluded
tokens (BOS unless ``include_bos``) never reach the log: an example's BOS value is computed
once for all windows (:func:`~.indexing.bos_feature_values`).
When the log would outgrow ``max_bytes`` it stops and :meth:`candidates` returns None: the
caller falls back to :func:`~.indexing.rerun_values` (a second pass), same results.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .stat_kernels import POS_BITS

DEFAULT_MAX_LOG_BYTES = 4 << 30  # 4 GiB: ~270M non-zero activations
_ENTRY_BYTES = 16  # int32 feature + int64 token key + float32 value (+ padding)
PRUNE_AT = 1 << 22  # log entries (~64 MB) before the first prune


class ActivationLog:
    """Append-only (feature, token key, value) triples of one pass, on the pass's device.

    :meth:`prune` drops the pairs that left the accumulator's pools; the accumulator calls it
    when :attr:`prune_due` (the log doubled since the last prune, past ``PRUNE_AT``
    entries), so the log follows the pools' size rather than the corpus's.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        self.max_bytes = max_bytes
        self.overflowed = False
        self._parts: list[tuple[Tensor, Tensor, Tensor]] = []
        self._n = 0
        self._pruned_at = 0

    @property
    def nbytes(self) -> int:
        return self._n * _ENTRY_BYTES

    @property
    def prune_due(self) -> bool:
        return not self.overflowed and self._n > 2 * max(self._pruned_at, PRUNE_AT // 2)

    def add(self, f: Int[Tensor, " n"], key: Int[Tensor, " n"], v: Float[Tensor, " n"]) -> None:
        if self.overflowed:
            return
        if (self._n + f.numel()) * _ENTRY_BYTES > self.max_bytes:
            self.overflowed, self._parts = True, []  # free it: the fallback re-runs windows
            return
        self._parts.append((f.to(torch.int32), key.clone(), v.to(torch.float32)))
        self._n += f.numel()

    def _kept(self, pools: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
        """The logged entries of the (feature, window) pairs named in ``pools``."""
        f = torch.cat([p[0] for p in self._parts]).long()  # [n]
        key = torch.cat([p[1] for p in self._parts])  # [n]
        v = torch.cat([p[2] for p in self._parts])  # [n]
        pf = torch.cat([p[0] for p in pools]).to(f.device).long()  # [m]
        pk = torch.cat([p[1] for p in pools]).to(f.device)  # [m]
        n_windows = int(torch.cat([key, pk]).max().item() >> POS_BITS) + 1
        wanted = torch.unique(pf * n_windows + (pk >> POS_BITS))  # [c] sorted
        keep = torch.isin(f * n_windows + (key >> POS_BITS), wanted, assume_unique=False)
        return f[keep], key[keep], v[keep]

    def prune(self, pools: list[tuple[Tensor, Tensor]]) -> None:
        """Keep only the pairs named in ``pools``: a pair that left the pools never returns
        (a window lies in one batch, and pools only lose entries)."""
        if self.overflowed or not self._parts:
            return
        f, key, v = self._kept(pools)
        self._parts = [(f.to(torch.int32), key, v)]
        self._n = self._pruned_at = f.numel()

    def candidates(self, pools: list[tuple[Tensor, Tensor]]) -> CandidateValues | None:
        """Entries of the (feature, window) pairs named in ``pools`` ((feature, key) each).

        Returns None when the log overflowed.
        """
        if self.overflowed:
            return None
        if not self._parts:
            return CandidateValues.empty()
        f, key, v = self._kept(pools)
        order = torch.sort(key, stable=True).indices
        order = order[torch.sort(f[order], stable=True).indices]  # by (feature, key)
        return CandidateValues(
            f[order].to(torch.int32).cpu().numpy(), key[order].cpu().numpy(), v[order].cpu().numpy()
        )


@dataclass
class CandidateValues:
    """Non-zero values of candidate (feature, window) pairs, sorted by (feature, key)."""

    feature: np.ndarray  # [n] int32
    key: np.ndarray  # [n] int64: window << POS_BITS | pos
    value: np.ndarray  # [n] float32
    _flat: tuple[int, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls) -> CandidateValues:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def concat(cls, tables: list[CandidateValues]) -> CandidateValues:
        """Tables of shards with disjoint windows, as one sorted table."""
        f = np.concatenate([t.feature for t in tables]) if tables else np.zeros(0, np.int32)
        k = np.concatenate([t.key for t in tables]) if tables else np.zeros(0, np.int64)
        v = np.concatenate([t.value for t in tables]) if tables else np.zeros(0, np.float32)
        order = np.lexsort((k, f))
        return cls(f[order], k[order], v[order])

    def entries(self, features: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (feature, window) pair's values lie: ``counts[i]`` entries per pair and
        the table indices of all of them, pair after pair (ascending position within one).
        Vectorised: one search for all pairs."""
        features, windows = np.asarray(features, np.int64), np.asarray(windows, np.int64)
        if not len(features) or not self.key.size:
            return np.zeros(len(features), np.int64), np.zeros(0, np.int64)
        span = (int(max(self.key.max() >> POS_BITS, windows.max())) + 1) << POS_BITS
        if (int(max(self.feature.max(), features.max())) + 1) * span < 1 << 62:
            if self._flat is None or self._flat[0] != span:
                self._flat = (span, self.feature.astype(np.int64) * span + self.key)
            table = self._flat[1]  # sorted like the table
            start = features * span + (windows << POS_BITS)
            lo = np.searchsorted(table, start)
            hi = np.searchsorted(table, start + (1 << POS_BITS))
        else:  # ids too large for one int64 key: search feature by feature
            ptr = np.searchsorted(self.feature, np.arange(int(features.max()) + 2))
            lo, hi = np.zeros(len(features), np.int64), np.zeros(len(features), np.int64)
            for i, (f, w) in enumerate(zip(features, windows, strict=True)):
                keys = self.key[ptr[f] : ptr[f + 1]]
                lo[i], hi[i] = ptr[f] + np.searchsorted(keys, [w << POS_BITS, (w + 1) << POS_BITS])
        counts = (hi - lo).astype(np.int64)
        first = np.cumsum(counts) - counts
        idx = np.arange(int(counts.sum())) - np.repeat(first, counts) + np.repeat(lo, counts)
        return counts, idx

    def dense(self, features: np.ndarray, windows: np.ndarray, width: int) -> np.ndarray:
        """Values of (feature, window) pairs as ``[n, width]`` float32, 0 where absent
        (positions >= width are dropped). For tests and small lists."""
        counts, idx = self.entries(features, windows)
        out = np.zeros((len(counts), width), np.float32)
        rows = np.repeat(np.arange(len(counts)), counts)
        pos = self.key[idx] & ((1 << POS_BITS) - 1)
        keep = pos < width
        out[rows[keep], pos[keep]] = self.value[idx[keep]]
        return out


def pool_entries(acc: Any) -> list[tuple[Tensor, Tensor]]:
    """(feature, key) of everything in a FeatureStatsAccumulator's top and quantile pools."""
    acc._compact()
    return [acc._top.cat()[:2], acc._quant.cat()[:2]]


def chosen_entries(acc: Any) -> list[tuple[Tensor, Tensor]]:
    """(feature, key) of the examples ``acc.finalize()`` chooses: all that a run needs when
    this accumulator is its only shard (nothing merges in to change the choice)."""
    s = acc.finalize()
    out = []
    for w, p in ((s.top_windows, s.top_positions), (s.quantile_windows, s.quantile_positions)):
        f = np.broadcast_to(np.arange(s.d_sae).reshape(-1, *[1] * (w.ndim - 1)), w.shape)
        m = w >= 0  # [F, ...] chosen slots
        out.append(
            (torch.from_numpy(f[m].astype(np.int64)), torch.from_numpy((w[m] << POS_BITS) | p[m]))
        )  # [n] each
    return out


# -- a shard's result, as bytes (stored in the database between the pass and the merge) -------


def shard_result_to_bytes(state: dict[str, Any], table: CandidateValues | None) -> bytes:
    """Serialise an accumulator ``state_dict()`` and its candidate table (None: overflowed)."""
    arrays = {f"s_{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    meta["has_table"] = table is not None
    if table is not None:
        arrays.update(c_feature=table.feature, c_key=table.key, c_value=table.value)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def shard_result_from_bytes(data: bytes) -> tuple[dict[str, Any], CandidateValues | None]:
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        state = {k[2:]: z[k] for k in z.files if k.startswith("s_")}
        table = (
            CandidateValues(z["c_feature"], z["c_key"], z["c_value"])
            if meta.pop("has_table")
            else None
        )
    state.update(meta)
    return state, table
