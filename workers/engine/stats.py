"""Per-feature statistics over a stream of SAE activations, mergeable exactly across shards.

:class:`FeatureStatsAccumulator` takes batches of feature activations ``[batch, pos, d_sae]``
(dense or sparse COO) and keeps, per feature, only what a dashboard needs; ``finalize``
returns a :class:`~.feature_stats.FeatureStats`. Every piece is
built so that ``merge`` is *exact*: accumulating shards separately and merging gives the
same bits as one pass over the concatenated stream, whatever the order, provided each token's
activations are the same bits in both (the indexing pass ensures it by computing every window
in the same batch whatever the shard count; see :class:`~.indexing.Shard`).

- **Counts, max, histogram** are integers or maxima: associative as they are.
- **Sum** is kept in int64 fixed point (units of 2^-20), so addition is associative; the
  mean is exact to within 2^-21 per activation. (Overflows past ~8.8e12 per feature.)
- **Histogram** bins are fixed in advance and data-independent, so shards share the edges:
  log-spaced, ``hist_bins_per_octave`` (a power of two) per octave over
  ``[2^lo, 2^hi)`` with an underflow ``(0, 2^lo)`` and an overflow ``[2^hi, inf)`` bin. A
  bin is read off the float32 bit pattern (exponent + leading mantissa bits), so membership
  is an exact integer test: no rounding at the edges. Coarser views merge whole bins.
- **Examples are windows.** Each batch's non-zeros are reduced, per (feature, window), to
  the window's maximum and its first position (``token = window << 20 | pos``); top-K and
  quantile samples choose among these, so one window is at most one example of a feature.
  Every other statistic stays per token.
- **Top-K** is ordered by (window max desc, position asc, window asc): a total order, so the
  top-K of a union is the top-K of the parts' top-Ks.
- **Quantile samples.** Bins split ``[0, max]`` into ``n_quantiles`` intervals (a window is
  binned by its maximum); the bounds are snapped *down* onto a fine grid
  (``QUANTILE_BINS_PER_OCTAVE`` equal cells per octave, so less than 6.25 % below
  ``k·max/n``). The reported bounds are the snapped ones and every example lies within
  them (SAEDashboard files some under the wrong bin). Sampling is deterministic: each
  (window's peak token, feature) gets a 32-bit hash of ``seed``; a bin's sample is its
  ``per_quantile`` smallest (hash, token). Smallest-S of a union is the smallest-S of the
  parts', so keeping S per fine grid cell is enough for any final max. Cells below
  ``max/n`` (which can only ever fall in bin 0, as max only grows) collapse into one
  "below" cell per feature, so at most ~2.3 octaves of cells are live per feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .feature_stats import FeatureStats
from .stat_kernels import (
    HASH_MAX,
    POS_BITS,
    Q_SHIFT,
    QUANTILE_BINS_PER_OCTAVE,
    desc_order,
    grid_edge,
    grid_key,
    position_first,
    positive_indices,
    quantile_bounds,
    quantile_floor,
    rank_in_group,
    sample_hash,
    select_per_group,
    token_key,
)

FIXED_POINT_BITS = 20  # sums are int64 in units of 2^-FIXED_POINT_BITS
_INIT_KEYS = (
    "d_sae",
    "top_k",
    "n_quantiles",
    "per_quantile",
    "hist_bins_per_octave",
    "hist_octaves",
    "seed",
    "include_bos",
)


def _pick(idx: Tensor, *ts: Tensor) -> tuple[Tensor, ...]:
    return tuple(t.index_select(0, idx) for t in ts)


@dataclass
class _Pool:
    """Candidate entries (feature, token key, value, hash), kept + pending.

    The top-K pool leaves ``hsh`` empty: it orders by value.
    """

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
                [torch.cat(x)] for x in (self.feat, self.key, self.val, self.hsh)
            )
        return self.feat[0], self.key[0], self.val[0], self.hsh[0]

    def keep(self, idx: Tensor) -> None:
        f, k, v, h = self.cat()
        self.feat, self.key, self.val, self.hsh = (
            [t.index_select(0, idx)] if t.numel() else [t] for t in (f, k, v, h)
        )
        self.stored, self.pending = idx.numel(), 0

    def due(self, at: int) -> bool:
        return self.pending > max(self.stored, at)


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
        hist_bins_per_octave: int = QUANTILE_BINS_PER_OCTAVE,
        hist_octaves: tuple[int, int] = (-10, 14),
        seed: int = 0,
        include_bos: bool = False,
        device: str | torch.device = "cpu",
        compact_at: int = 1 << 16,
    ) -> None:
        for name, v in (
            ("d_sae", d_sae),
            ("top_k", top_k),
            ("n_quantiles", n_quantiles),
            ("per_quantile", per_quantile),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 1 <= hist_bins_per_octave <= 1 << 23 or hist_bins_per_octave & (
            hist_bins_per_octave - 1
        ):
            raise ValueError(
                f"hist_bins_per_octave must be a power of two, got {hist_bins_per_octave}"
            )
        lo, hi = hist_octaves
        if not -126 <= lo < hi <= 127:
            raise ValueError(
                f"hist_octaves must satisfy -126 <= lo < hi <= 127, got {hist_octaves}"
            )
        if n_quantiles >= QUANTILE_BINS_PER_OCTAVE:
            raise ValueError(f"n_quantiles must be < {QUANTILE_BINS_PER_OCTAVE}, got {n_quantiles}")
        self.settings: dict[str, Any] = {
            "d_sae": d_sae,
            "top_k": top_k,
            "n_quantiles": n_quantiles,
            "per_quantile": per_quantile,
            "hist_bins_per_octave": hist_bins_per_octave,
            "hist_octaves": [lo, hi],
            "seed": int(seed),
            "include_bos": bool(include_bos),
        }
        self.device = torch.device(device)
        self.compact_at = compact_at
        self._h_shift = 23 - (hist_bins_per_octave.bit_length() - 1)
        self._h_lo = grid_key(torch.tensor([2.0**lo]), self._h_shift).item()
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
        self._thr_floor = quantile_floor(self.max, n_quantiles)
        self._qthr = torch.full((F, self._q_width), HASH_MAX + 1, dtype=torch.long, device=dev)
        # Optional sink for the counted non-zeros that may be chosen (candidates.ActivationLog).
        self.log: Any = None

    # -- update ----------------------------------------------------------------------------

    def update(
        self,
        acts: Float[Tensor, "batch pos d_sae"],
        window: Int[Tensor, " batch"],
        mask: Bool[Tensor, "batch pos"] | None = None,
    ) -> None:
        """Add one batch. ``window[b]`` identifies row b (ids must be unique over the stream);
        ``mask`` False excludes a token (BOS, padding). Only activations > 0 are read (a
        sparse tensor's stored entries, or a dense one's).
        """
        _, P, F = acts.shape
        if F != self.settings["d_sae"]:
            raise ValueError(
                f"activations have {F} features, the accumulator {self.settings['d_sae']}"
            )
        if acts.is_sparse:
            sp = acts.coalesce()
            b, p, f = sp.indices()  # [nnz] each
            v = sp.values()
        else:
            flat = acts.detach().reshape(-1)  # [B*P*F]
            i = positive_indices(flat).to(flat.device)  # [nnz]
            v = flat.index_select(0, i)
            f, b, p = i % F, i // (P * F), (i // F) % P
        self.add_nonzeros(b, p, f, v, window, mask, n_pos=P)

    def add_nonzeros(
        self,
        row: Int[Tensor, " n"],
        pos: Int[Tensor, " n"],
        feature: Int[Tensor, " n"],
        value: Float[Tensor, " n"],
        window: Int[Tensor, " batch"],
        mask: Bool[Tensor, "batch pos"] | None = None,
        *,
        n_pos: int | None = None,
    ) -> None:
        """Add one batch given as its non-zeros (row, pos, feature, value), e.g.
        :func:`~.activations.sparse_features`. ``mask`` counts tokens (``None``: ``n_pos``
        tokens in every row); entries on a False token or with value <= 0 are ignored.
        A window's non-zeros must all come in one call.
        """
        dev = self.device
        window = torch.as_tensor(window, device=dev).long()  # [B]
        B = window.numel()
        row, pos, feature = (t.to(dev).long() for t in (row, pos, feature))
        value = value.to(dev, torch.float32)
        keep = value > 0
        if mask is not None:
            mask = mask.to(dev, torch.bool)  # [B, P]
            P = mask.shape[1]
            keep &= mask.reshape(-1).index_select(0, row * P + pos)
            self.n_tokens += int(mask.sum())
        else:
            if n_pos is None:
                raise ValueError("add_nonzeros needs a mask or n_pos")
            self.n_tokens += B * n_pos
        if not bool(keep.all()):
            row, pos, feature, value = _pick(keep.nonzero().squeeze(1), row, pos, feature, value)
        self._ingest(feature, window, row, pos, value, B)

    def _ingest(
        self, f: Tensor, window: Tensor, row: Tensor, pos: Tensor, v: Tensor, n_rows: int
    ) -> None:
        """Fold in one batch's counted non-zeros (``row`` < ``n_rows`` indexes ``window``)."""
        F = self.settings["d_sae"]
        self.count += torch.bincount(f, minlength=F)
        self.fsum.index_add_(0, f, (v * 2.0**FIXED_POINT_BITS).round().long())
        self.max.scatter_reduce_(0, f, v, "amax")
        hb = (grid_key(v, self._h_shift) - self._h_lo + 1).clamp_(0, self._n_hist - 1)
        self.hist += torch.bincount(f * self._n_hist + hb, minlength=F * self._n_hist)
        # Each (feature, window) pair: its maximum, at its first position.
        pair = f * n_rows + row  # [n]
        wmax = torch.zeros(F * n_rows, device=f.device).scatter_reduce_(0, pair, v, "amax")
        at_max = v == wmax.index_select(0, pair)  # [n]
        first = torch.full((F * n_rows,), 1 << POS_BITS, dtype=torch.long, device=f.device)
        first.scatter_reduce_(0, pair[at_max], pos[at_max], "amin")
        peak = (at_max & (pos == first.index_select(0, pair))).nonzero().squeeze(1)  # [m]
        tokens = (f, pair, token_key(window.index_select(0, row), pos), v)  # every non-zero
        f, pair, key, v = _pick(peak, *tokens)  # [m] one per pair
        top = (v >= self._kth.index_select(0, f)).nonzero().squeeze(1)  # ties may win on key
        self._top.add(*_pick(top, f, key, v), key[:0])
        rel = (grid_key(v, Q_SHIFT) - self._thr_floor.index_select(0, f) + 1).clamp_(min=0)
        h = sample_hash(key, f, self.settings["seed"])  # rel 0 = the "below" cell
        thr = self._qthr.view(-1).index_select(
            0, f * self._q_width + rel.clamp(max=self._q_width - 1)
        )
        quant = ((rel >= self._q_width) | (h <= thr)).nonzero().squeeze(1)
        self._quant.add(*_pick(quant, f, key, v, h))
        if self.log is not None:
            # A (feature, window) pair can only be chosen in the end if it entered a pool now
            # (a pair that fails the prefilter is never chosen, and pools only lose entries),
            # so only those pairs' non-zeros are logged: every one of them, since a window
            # lies in one batch.
            hit = torch.zeros(F * n_rows, dtype=torch.bool, device=f.device)
            hit[pair.index_select(0, top)] = True
            hit[pair.index_select(0, quant)] = True
            tf, tpair, tkey, tv = tokens
            logged = hit.index_select(0, tpair).nonzero().squeeze(1)
            self.log.add(*_pick(logged, tf, tkey, tv))
        if self._top.due(self.compact_at) or self._quant.due(self.compact_at):
            self._compact()

    # -- compaction ------------------------------------------------------------------------

    def _compact(self) -> None:
        F, K = self.settings["d_sae"], self.settings["top_k"]
        S, W = self.settings["per_quantile"], self._q_width
        f, key, v, _ = self._top.cat()
        idx = select_per_group(f, desc_order(v), position_first(key), K)
        self._top.keep(idx)
        f, v = f[idx], v[idx]
        full = torch.bincount(f, minlength=F) == K
        low = torch.full((F,), float("inf"), device=self.device).scatter_reduce_(0, f, v, "amin")
        self._kth = torch.where(full, low, 0.0)

        f, key, v, h = self._quant.cat()
        floor = quantile_floor(self.max, self.settings["n_quantiles"])
        rel = (grid_key(v, Q_SHIFT) - floor[f] + 1).clamp_(min=0)  # < 2^13: the whole grid
        idx = select_per_group((f << 13) | rel, h, key, S)
        self._quant.keep(idx)
        f, rel, h = f[idx], rel[idx], h[idx]
        live = rel < W  # always, unless max/n is subnormal; other cells just skip the prefilter
        g, h = f[live] * W + rel[live], h[live]
        full = torch.bincount(g, minlength=F * W) == S
        top = torch.zeros(F * W, dtype=torch.long, device=self.device).scatter_reduce_(
            0, g, h, "amax"
        )
        self._qthr = torch.where(full, top, HASH_MAX + 1).view(F, W)
        self._thr_floor = floor
        if self.log is not None and self.log.prune_due:
            self.log.prune([self._top.cat()[:2], self._quant.cat()[:2]])

    # -- merge, state, finalize --------------------------------------------------------------

    def merge(self, other: FeatureStatsAccumulator) -> FeatureStatsAccumulator:
        """Fold a disjoint shard's accumulator into this one (exact); returns self.

        Raises ValueError when the settings differ. ``other`` is left unchanged.
        """
        if other.settings != self.settings:
            raise ValueError(
                f"cannot merge accumulators with different settings: "
                f"{self.settings} vs {other.settings}"
            )
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
        arrays = {
            "count": self.count,
            "fsum": self.fsum,
            "max": self.max,
            "hist": self.hist,
            **{f"top_{i}": t for i, t in enumerate(top)},
            **{f"quant_{i}": t for i, t in enumerate(quant)},
        }
        return {
            "settings": dict(self.settings),
            "n_tokens": self.n_tokens,
            **{k: t.cpu().numpy() for k, t in arrays.items()},
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], device: str | torch.device = "cpu"
    ) -> FeatureStatsAccumulator:
        """Rebuild an accumulator saved by :meth:`state_dict`."""
        s = dict(state["settings"])
        args = {k: s[k] for k in _INIT_KEYS}
        acc = cls(
            args.pop("d_sae"), hist_octaves=tuple(args.pop("hist_octaves")), device=device, **args
        )
        acc.settings = s  # with any extra settings the pass recorded (context, ...)
        t = {
            k: torch.as_tensor(v, device=acc.device)
            for k, v in state.items()
            if isinstance(v, np.ndarray)
        }
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
        f, key, v, _ = self._top.cat()  # sorted by (feature, value desc, pos, window): _compact
        r = rank_in_group(f)
        top_v = torch.zeros(F, K, device=self.device)
        top_k = torch.full((F, K), -1, dtype=torch.long, device=self.device)
        top_v[f, r], top_k[f, r] = v, key

        bounds = quantile_bounds(self.max, n)  # [F, n+1]
        f, key, v, h = self._quant.cat()
        qbin = (v[:, None] >= bounds[f, 1:n]).sum(1)  # [m]
        group = f * n + qbin
        idx = select_per_group(group, h, key, S)
        idx = idx[select_per_group(group[idx], desc_order(v[idx]), position_first(key[idx]), S)]
        g = group[idx]
        r = rank_in_group(g)
        q_v = torch.zeros(F * n, S, device=self.device)
        q_k = torch.full((F * n, S), -1, dtype=torch.long, device=self.device)
        q_v[g, r], q_k[g, r] = v[idx], key[idx]

        bpo = self.settings["hist_bins_per_octave"]
        inner = grid_edge(self._h_lo + torch.arange((hi - lo) * bpo + 1), self._h_shift).double()
        edges = torch.cat(
            [
                torch.zeros(1, dtype=torch.float64),
                inner,
                torch.full((1,), float("inf"), dtype=torch.float64),
            ]
        )

        def split(k: Tensor) -> tuple[np.ndarray, np.ndarray]:
            w = torch.where(k >= 0, k >> POS_BITS, -1)
            p = torch.where(k >= 0, k & ((1 << POS_BITS) - 1), -1)
            return w.cpu().numpy(), p.cpu().numpy()

        tw, tp = split(top_k)
        qw, qp = split(q_k.view(F, n, S))
        return FeatureStats(
            settings=dict(self.settings),
            n_tokens=self.n_tokens,
            count=self.count.cpu().numpy(),
            sum=self.fsum.cpu().numpy().astype(np.float64) / 2.0**FIXED_POINT_BITS,
            max=self.max.cpu().numpy(),
            hist_edges=edges.numpy(),
            hist_counts=self.hist.view(F, self._n_hist).cpu().numpy(),
            top_values=top_v.cpu().numpy(),
            top_windows=tw,
            top_positions=tp,
            quantile_bounds=bounds.cpu().numpy(),
            quantile_values=q_v.view(F, n, S).cpu().numpy(),
            quantile_windows=qw,
            quantile_positions=qp,
        )
