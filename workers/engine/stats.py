"""Per-feature statistics over a stream of SAE activations, mergeable exactly across shards.

:class:`FeatureStatsAccumulator` takes batches of feature activations ``[batch, pos, d_sae]``
(dense or sparse COO) and keeps, per feature, only what a dashboard needs. Every piece is
built so that ``merge`` is *exact*: accumulating shards separately and merging gives the
same bits as one pass over the concatenated stream, whatever the order.

- **Counts, max, histogram** are integers or maxima: associative as they are.
- **Sum** is kept in int64 fixed point (units of 2^-20), so addition is associative; the
  mean is exact to within 2^-21 per activation. (Overflows past ~8.8e12 per feature.)
- **Histogram** bins are fixed in advance and data-independent, so shards share the edges:
  log-spaced, ``hist_bins_per_octave`` (a power of two) per octave over
  ``[2^lo, 2^hi)`` with an underflow ``(0, 2^lo)`` and an overflow ``[2^hi, inf)`` bin. A
  bin is read off the float32 bit pattern (exponent + leading mantissa bits), so membership
  is an exact integer test: no rounding at the edges. Coarser views merge whole bins.
- **Top-K** is ordered by (value desc, token asc) where token = ``window << 20 | pos``:
  a total order, so the top-K of a union is the top-K of the parts' top-Ks.
- **Quantile samples.** Bins split ``[0, max]`` into ``n_quantiles`` intervals; the bounds
  are snapped *down* onto a fine grid (``QUANTILE_BINS_PER_OCTAVE`` equal cells per octave,
  so less than 6.25 % below ``k·max/n``). The reported bounds are the snapped
  ones and every example lies within them (SAEDashboard files some under the wrong bin).
  Sampling is deterministic: each (token, feature) gets a 32-bit hash of ``seed``; a bin's
  sample is its ``per_quantile`` smallest (hash, token). Smallest-S of a union is the
  smallest-S of the parts', so keeping S per fine grid cell is enough for any final max.
  Cells below ``max/n`` (which can only ever fall in bin 0, as max only grows) collapse into
  one "below" cell per feature, so at most ~2.3 octaves of cells are live per feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

POS_BITS = 20  # token key = window << POS_BITS | pos
FIXED_POINT_BITS = 20  # sums are int64 in units of 2^-FIXED_POINT_BITS
QUANTILE_BINS_PER_OCTAVE = 16
_Q_SHIFT = 23 - 4  # float32 mantissa bits dropped for the quantile grid (16 = 2^4 per octave)
_HASH_MAX = (1 << 32) - 1
_INIT_KEYS = ("d_sae", "top_k", "n_quantiles", "per_quantile", "hist_bins_per_octave",
              "hist_octaves", "seed", "include_bos")


def token_key(window: Tensor, pos: Tensor) -> Tensor:
    """The int64 key ordering tokens by (window, pos); ties in value are broken by it."""
    return (window.long() << POS_BITS) | pos.long()


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

def _fkey(v: Float[Tensor, " n"], shift: int) -> Int[Tensor, " n"]:
    """Monotone grid cell of positive float32 values: exponent and top mantissa bits."""
    return v.float().contiguous().view(torch.int32).long() >> shift


def _fedge(k: Int[Tensor, " n"], shift: int) -> Float[Tensor, " n"]:
    """Lower edge (float32, exact) of grid cell ``k``."""
    return (k << shift).to(torch.int32).view(torch.float32)


def quantile_bounds(mx: Float[Tensor, " d_sae"], n: int) -> Float[Tensor, "d_sae n_plus_1"]:
    """Bin bounds [0, b_1, ..., b_{n-1}, max]: b_k = k·max/n snapped down onto the fine grid.

    Bin 0 is (0, b_1); bin k is [b_k, b_{k+1}); the last bin also includes max.
    """
    k = torch.arange(1, n, device=mx.device, dtype=torch.float32)
    target = (mx.float()[:, None] * k) / n  # [F, n-1] float32
    inner = _fedge(_fkey(target, _Q_SHIFT), _Q_SHIFT)  # [F, n-1]
    zero = torch.zeros_like(mx, dtype=torch.float32)[:, None]
    return torch.cat([zero, inner, mx.float()[:, None]], dim=1)  # [F, n+1]


def _qfloor(mx: Float[Tensor, " d_sae"], n: int) -> Int[Tensor, " d_sae"]:
    """Grid cell of b_1: cells strictly below it can only ever be in bin 0."""
    return _fkey((mx.float() * 1.0) / n, _Q_SHIFT)


# ---- bottom-k per group -----------------------------------------------------------------------

def select_per_group(group: Tensor, order: Tensor, key: Tensor, keep: int) -> Tensor:
    """Indices of the ``keep`` smallest (order, key) entries of every group.

    Returned sorted by (group, order, key). Three sorts, least significant key first.
    """
    idx = torch.sort(key, stable=True).indices
    idx = idx[torch.sort(order[idx], stable=True).indices]
    idx = idx[torch.sort(group[idx], stable=True).indices]
    g = group[idx]
    n = g.numel()
    if n == 0:
        return idx
    start = torch.ones(n, dtype=torch.bool, device=g.device)
    start[1:] = g[1:] != g[:-1]
    pos = torch.arange(n, device=g.device)
    first = torch.cummax(torch.where(start, pos, 0), 0).values
    return idx[(pos - first) < keep]


@dataclass
class _Pool:
    """Candidate entries (feature, token key, value, hash), kept + pending."""

    feat: list[Tensor] = field(default_factory=list)
    key: list[Tensor] = field(default_factory=list)
    val: list[Tensor] = field(default_factory=list)
    hsh: list[Tensor] = field(default_factory=list)
    stored: int = 0
    pending: int = 0

    def add(self, feat: Tensor, key: Tensor, val: Tensor, hsh: Tensor) -> None:
        if feat.numel() or not self.feat:
            self.feat.append(feat), self.key.append(key), self.val.append(val), self.hsh.append(hsh)
            self.pending += feat.numel()

    def cat(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if len(self.feat) > 1:
            self.feat, self.key, self.val, self.hsh = (
                [torch.cat(x)] for x in (self.feat, self.key, self.val, self.hsh))
        return self.feat[0], self.key[0], self.val[0], self.hsh[0]

    def keep(self, idx: Tensor) -> None:
        f, k, v, h = self.cat()
        self.feat, self.key, self.val, self.hsh = [f[idx]], [k[idx]], [v[idx]], [h[idx]]
        self.stored, self.pending = idx.numel(), 0

    def due(self, at: int) -> bool:
        return self.pending > max(self.stored, at)


def _rank_in_group(g: Tensor) -> Tensor:
    """0, 1, 2, ... within runs of equal values of a sorted group vector."""
    n = g.numel()
    start = torch.ones(n, dtype=torch.bool, device=g.device)
    start[1:] = g[1:] != g[:-1]
    pos = torch.arange(n, device=g.device)
    return pos - torch.cummax(torch.where(start, pos, 0), 0).values


def _desc_order(v: Tensor) -> Tensor:
    """Ascending sort key for descending positive float32 values."""
    return 0x7FFFFFFF - v.float().contiguous().view(torch.int32).long()


@dataclass(frozen=True)
class ExampleRef:
    """One chosen example: a (window, pos) token where ``feature`` fired with ``value``.

    ``kind`` is "top" (``bin`` None) or "quantile" (``bin`` = 0..n_quantiles-1, bounds in
    ``FeatureStats.quantile_bounds``); ``rank`` is its order within the list (value desc).
    """

    feature: int
    kind: str
    bin: int | None
    rank: int
    window: int
    pos: int
    value: float


@dataclass
class FeatureStats:
    """Finalised statistics of every feature (numpy arrays; -1 windows/positions pad lists)."""

    settings: dict[str, Any]
    n_tokens: int  # tokens counted (mask True): the density denominator
    count: np.ndarray  # [F] int64, tokens where the feature is > 0
    sum: np.ndarray  # [F] float64 (from the exact fixed-point sum)
    max: np.ndarray  # [F] float32, 0 for dead features
    hist_edges: np.ndarray  # [n_bins+1] float64: 0, 2^lo, ..., 2^hi, inf (shared by all)
    hist_counts: np.ndarray  # [F, n_bins] int64, non-zero activations per bin
    top_values: np.ndarray  # [F, top_k] float32, value desc then token asc
    top_windows: np.ndarray  # [F, top_k] int64
    top_positions: np.ndarray  # [F, top_k] int64
    quantile_bounds: np.ndarray  # [F, n_quantiles+1] float32
    quantile_values: np.ndarray  # [F, n_quantiles, per_quantile] float32, value desc
    quantile_windows: np.ndarray  # [F, n_quantiles, per_quantile] int64
    quantile_positions: np.ndarray  # [F, n_quantiles, per_quantile] int64

    @property
    def d_sae(self) -> int:
        return int(self.count.shape[0])

    @property
    def density(self) -> np.ndarray:
        """Fraction of counted tokens on which each feature fired."""
        return self.count / max(self.n_tokens, 1)

    @property
    def mean(self) -> np.ndarray:
        """Mean activation over the tokens where the feature fired (0 for dead features)."""
        return np.divide(self.sum, self.count, out=np.zeros_like(self.sum), where=self.count > 0)

    @property
    def dead(self) -> np.ndarray:
        """Features that never fired on a counted token."""
        return self.count == 0

    def histogram(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(edges [m+1], counts [m]) of one feature, trimmed to its non-empty bins."""
        nz = np.flatnonzero(self.hist_counts[feature])
        if nz.size == 0:
            return self.hist_edges[:1], self.hist_counts[feature, :0]
        lo, hi = nz[0], nz[-1] + 1
        return self.hist_edges[lo : hi + 1], self.hist_counts[feature, lo:hi]

    def example_refs(self) -> list[ExampleRef]:
        """Every chosen example (top lists, then quantile bins), feature by feature."""
        refs: list[ExampleRef] = []
        for f, r in zip(*np.nonzero(self.top_windows >= 0), strict=True):
            refs.append(ExampleRef(int(f), "top", None, int(r), int(self.top_windows[f, r]),
                                   int(self.top_positions[f, r]), float(self.top_values[f, r])))
        for f, b, r in zip(*np.nonzero(self.quantile_windows >= 0), strict=True):
            refs.append(ExampleRef(int(f), "quantile", int(b), int(r),
                                   int(self.quantile_windows[f, b, r]),
                                   int(self.quantile_positions[f, b, r]),
                                   float(self.quantile_values[f, b, r])))
        return refs


class FeatureStatsAccumulator:
    """Streaming per-feature statistics; ``update`` batches, ``merge`` shards, ``finalize``.

    ``include_bos`` is recorded only: the caller's mask decides which tokens count.
    Raises ValueError for non-positive sizes, a non-power-of-two ``hist_bins_per_octave``,
    or ``n_quantiles >= QUANTILE_BINS_PER_OCTAVE`` (bounds would no longer be distinct).
    ``compact_at`` (pending candidates before a compaction) trades memory for speed; results
    do not depend on it.
    """

    def __init__(
        self,
        d_sae: int,
        *,
        top_k: int = 30,
        n_quantiles: int = 5,
        per_quantile: int = 5,
        hist_bins_per_octave: int = 8,
        hist_octaves: tuple[int, int] = (-10, 14),
        seed: int = 0,
        include_bos: bool = False,
        device: str | torch.device = "cpu",
        compact_at: int = 1 << 16,
    ) -> None:
        for name, v in (("d_sae", d_sae), ("top_k", top_k), ("n_quantiles", n_quantiles),
                        ("per_quantile", per_quantile)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 1 <= hist_bins_per_octave <= 1 << 23 or hist_bins_per_octave & (
                hist_bins_per_octave - 1):
            raise ValueError(f"hist_bins_per_octave must be a power of two, "
                             f"got {hist_bins_per_octave}")
        lo, hi = hist_octaves
        if not -126 <= lo < hi <= 127:
            raise ValueError(f"hist_octaves must satisfy -126 <= lo < hi <= 127, "
                             f"got {hist_octaves}")
        if n_quantiles >= QUANTILE_BINS_PER_OCTAVE:
            raise ValueError(f"n_quantiles must be < {QUANTILE_BINS_PER_OCTAVE}, got {n_quantiles}")
        self.settings: dict[str, Any] = {
            "d_sae": d_sae, "top_k": top_k, "n_quantiles": n_quantiles,
            "per_quantile": per_quantile, "hist_bins_per_octave": hist_bins_per_octave,
            "hist_octaves": [lo, hi], "seed": int(seed), "include_bos": bool(include_bos)}
        self.device = torch.device(device)
        self.compact_at = compact_at
        self._h_shift = 23 - (hist_bins_per_octave.bit_length() - 1)
        self._h_lo = _fkey(torch.tensor([2.0**lo]), self._h_shift).item()
        self._n_hist = (hi - lo) * hist_bins_per_octave + 2  # + underflow + overflow
        # live quantile cells per feature: "below" + cells up to the max (see module doc)
        self._q_width = (n_quantiles - 1).bit_length() * QUANTILE_BINS_PER_OCTAVE + 2
        dev, F = self.device, d_sae
        self.n_tokens = 0
        self.count = torch.zeros(F, dtype=torch.long, device=dev)
        self.fsum = torch.zeros(F, dtype=torch.long, device=dev)
        self.max = torch.zeros(F, dtype=torch.float32, device=dev)
        self.hist = torch.zeros(F * self._n_hist, dtype=torch.long, device=dev)
        self._top, self._quant = _Pool(), _Pool()
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        for pool in (self._top, self._quant):
            pool.add(empty, empty, empty.float(), empty)
        # Prefilter thresholds, refreshed at each compaction (stale ones are conservative).
        self._kth = torch.zeros(F, dtype=torch.float32, device=dev)
        self._thr_floor = _qfloor(self.max, n_quantiles)
        self._qthr = torch.full((F, self._q_width), _HASH_MAX + 1, dtype=torch.long, device=dev)

    # -- update ----------------------------------------------------------------------------

    def update(
        self,
        acts: Float[Tensor, "batch pos d_sae"],
        window: Int[Tensor, " batch"],
        mask: Bool[Tensor, "batch pos"] | None = None,
        pos: Int[Tensor, "batch pos"] | None = None,
    ) -> None:
        """Add one batch. ``window[b]`` identifies row b (ids must be unique over the stream);
        ``pos`` defaults to the column index; ``mask`` False excludes a token (BOS, padding).
        Only activations > 0 are read (a sparse tensor's stored entries, or a dense one's).
        """
        B, P, F = acts.shape
        if F != self.settings["d_sae"]:
            raise ValueError(f"activations have {F} features, the accumulator "
                             f"{self.settings['d_sae']}")
        dev = self.device
        window = torch.as_tensor(window, device=dev).long()  # [B]
        mask = (torch.ones(B, P, dtype=torch.bool, device=dev) if mask is None
                else mask.to(dev, torch.bool))  # [B, P]
        if acts.is_sparse:
            sp = acts.coalesce()
            b, p, f = sp.indices().to(dev)  # [nnz] each
            v = sp.values().to(dev, torch.float32)
            keep = v > 0
            b, p, f, v = b[keep], p[keep], f[keep], v[keep]
        else:
            b, p, f = (acts > 0).nonzero().to(dev).unbind(1)  # [nnz] each
            v = acts[b, p, f].to(dev, torch.float32)
        keep = mask[b, p]
        if not bool(keep.all()):
            b, p, f, v = b[keep], p[keep], f[keep], v[keep]
        col = p if pos is None else pos.to(dev).long()[b, p]
        self.n_tokens += int(mask.sum())
        self._ingest(f, token_key(window[b], col), v)

    def _ingest(self, f: Tensor, key: Tensor, v: Tensor) -> None:
        F = self.settings["d_sae"]
        self.count += torch.bincount(f, minlength=F)
        self.fsum.index_add_(0, f, (v * 2.0**FIXED_POINT_BITS).round().long())
        self.max.scatter_reduce_(0, f, v, "amax")
        hb = (_fkey(v, self._h_shift) - self._h_lo + 1).clamp_(0, self._n_hist - 1)
        self.hist += torch.bincount(f * self._n_hist + hb, minlength=F * self._n_hist)
        sel = v >= self._kth[f]  # ties kept: they may win on the token key
        self._top.add(f[sel], key[sel], v[sel], key[sel])
        rel = (_fkey(v, _Q_SHIFT) - self._thr_floor[f] + 1).clamp_(min=0)  # 0 = below
        h = sample_hash(key, f, self.settings["seed"])
        sel = (rel >= self._q_width) | (h <= self._qthr[f, rel.clamp(max=self._q_width - 1)])
        self._quant.add(f[sel], key[sel], v[sel], h[sel])
        if self._top.due(self.compact_at) or self._quant.due(self.compact_at):
            self._compact()

    # -- compaction ------------------------------------------------------------------------

    def _compact(self) -> None:
        F, K = self.settings["d_sae"], self.settings["top_k"]
        S, W = self.settings["per_quantile"], self._q_width
        f, key, v, _ = self._top.cat()
        idx = select_per_group(f, _desc_order(v), key, K)
        self._top.keep(idx)
        f, v = f[idx], v[idx]
        full = torch.bincount(f, minlength=F) == K
        low = torch.full((F,), float("inf"), device=self.device).scatter_reduce_(0, f, v, "amin")
        self._kth = torch.where(full, low, 0.0)

        f, key, v, h = self._quant.cat()
        floor = _qfloor(self.max, self.settings["n_quantiles"])
        rel = (_fkey(v, _Q_SHIFT) - floor[f] + 1).clamp_(min=0)  # < 2^13: the whole grid
        idx = select_per_group((f << 13) | rel, h, key, S)
        self._quant.keep(idx)
        f, rel, h = f[idx], rel[idx], h[idx]
        live = rel < W  # always, unless max/n is subnormal; other cells just skip the prefilter
        g, h = f[live] * W + rel[live], h[live]
        full = torch.bincount(g, minlength=F * W) == S
        top = torch.zeros(F * W, dtype=torch.long, device=self.device).scatter_reduce_(
            0, g, h, "amax")
        self._qthr = torch.where(full, top, _HASH_MAX + 1).view(F, W)
        self._thr_floor = floor

    # -- merge, state, finalize --------------------------------------------------------------

    def merge(self, other: FeatureStatsAccumulator) -> FeatureStatsAccumulator:
        """Fold a disjoint shard's accumulator into this one (exact); returns self.

        Raises ValueError when the settings differ. ``other`` is left unchanged.
        """
        if other.settings != self.settings:
            raise ValueError(f"cannot merge accumulators with different settings: "
                             f"{self.settings} vs {other.settings}")
        self.n_tokens += other.n_tokens
        self.count += other.count.to(self.device)
        self.fsum += other.fsum.to(self.device)
        self.hist += other.hist.to(self.device)
        self.max = torch.maximum(self.max, other.max.to(self.device))
        for mine, theirs in ((self._top, other._top), (self._quant, other._quant)):
            mine.add(*(t.to(self.device) for t in theirs.cat()))
        self._compact()
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain settings + numpy arrays (picklable; for passing shards between workers)."""
        self._compact()
        top, quant = self._top.cat(), self._quant.cat()
        arrays = {"count": self.count, "fsum": self.fsum, "max": self.max, "hist": self.hist,
                  **{f"top_{i}": t for i, t in enumerate(top)},
                  **{f"quant_{i}": t for i, t in enumerate(quant)}}
        return {"settings": dict(self.settings), "n_tokens": self.n_tokens,
                **{k: t.cpu().numpy() for k, t in arrays.items()}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: str | torch.device = "cpu"
                        ) -> FeatureStatsAccumulator:
        """Rebuild an accumulator saved by :meth:`state_dict`."""
        s = dict(state["settings"])
        args = {k: s[k] for k in _INIT_KEYS}
        acc = cls(args.pop("d_sae"), hist_octaves=tuple(args.pop("hist_octaves")),
                  device=device, **args)
        acc.settings = s  # with any extra settings the pass recorded (context, ...)
        t = {k: torch.as_tensor(v, device=acc.device) for k, v in state.items()
             if isinstance(v, np.ndarray)}
        acc.n_tokens = int(state["n_tokens"])
        acc.count, acc.fsum, acc.max, acc.hist = t["count"], t["fsum"], t["max"], t["hist"]
        acc._top.add(*(t[f"top_{i}"] for i in range(4)))
        acc._quant.add(*(t[f"quant_{i}"] for i in range(4)))
        acc._compact()
        return acc

    def finalize(self) -> FeatureStats:
        """The statistics so far (the accumulator stays usable)."""
        self._compact()
        F, K = self.settings["d_sae"], self.settings["top_k"]
        n, S = self.settings["n_quantiles"], self.settings["per_quantile"]
        lo, hi = self.settings["hist_octaves"]
        f, key, v, _ = self._top.cat()  # sorted by (feature, value desc, key) by _compact
        r = _rank_in_group(f)
        top_v = torch.zeros(F, K, device=self.device)
        top_k = torch.full((F, K), -1, dtype=torch.long, device=self.device)
        top_v[f, r], top_k[f, r] = v, key

        bounds = quantile_bounds(self.max, n)  # [F, n+1]
        f, key, v, h = self._quant.cat()
        qbin = (v[:, None] >= bounds[f, 1:n]).sum(1)  # [m]
        group = f * n + qbin
        idx = select_per_group(group, h, key, S)
        idx = idx[select_per_group(group[idx], _desc_order(v[idx]), key[idx], S)]
        g = group[idx]
        r = _rank_in_group(g)
        q_v = torch.zeros(F * n, S, device=self.device)
        q_k = torch.full((F * n, S), -1, dtype=torch.long, device=self.device)
        q_v[g, r], q_k[g, r] = v[idx], key[idx]

        bpo = self.settings["hist_bins_per_octave"]
        inner = _fedge(self._h_lo + torch.arange((hi - lo) * bpo + 1), self._h_shift).double()
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), inner,
                           torch.full((1,), float("inf"), dtype=torch.float64)])

        def split(k: Tensor) -> tuple[np.ndarray, np.ndarray]:
            w = torch.where(k >= 0, k >> POS_BITS, -1)
            p = torch.where(k >= 0, k & ((1 << POS_BITS) - 1), -1)
            return w.cpu().numpy(), p.cpu().numpy()

        tw, tp = split(top_k)
        qw, qp = split(q_k.view(F, n, S))
        return FeatureStats(
            settings=dict(self.settings), n_tokens=self.n_tokens,
            count=self.count.cpu().numpy(),
            sum=self.fsum.cpu().numpy().astype(np.float64) / 2.0**FIXED_POINT_BITS,
            max=self.max.cpu().numpy(), hist_edges=edges.numpy(),
            hist_counts=self.hist.view(F, self._n_hist).cpu().numpy(),
            top_values=top_v.cpu().numpy(), top_windows=tw, top_positions=tp,
            quantile_bounds=bounds.cpu().numpy(),
            quantile_values=q_v.view(F, n, S).cpu().numpy(),
            quantile_windows=qw, quantile_positions=qp)
