"""What the statistics pass returns: every feature's finalised statistics and chosen examples.

:class:`FeatureStats` is built by ``FeatureStatsAccumulator.finalize`` (stats.py, which also
says how each piece is kept mergeable) and holds plain numpy arrays indexed by feature;
:class:`ExampleRef` names one chosen example.
(interventions.FeatureStats is another thing: the few numbers an ablation needs.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExampleRef:
    """One chosen example: window ``window``, whose maximum for ``feature`` is ``value``, first
    reached at ``pos``.

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
    # example_refs(), built once: the finish step asks three times (~0.2 s each for 81k).
    _refs: list[ExampleRef] | None = field(default=None, init=False, repr=False, compare=False)

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

    def quantile_fractions(self) -> np.ndarray:
        """[F, n_quantiles] share of each feature's non-zero activations in each quantile bin
        (NaN for dead features). Exact when the histogram grid refines the quantile grid (the
        default: ``hist_bins_per_octave`` a multiple of QUANTILE_BINS_PER_OCTAVE), since every
        inner bound is then a histogram edge; bounds below ``2^hist_octaves[0]`` fall in the
        underflow bin and are approximate."""
        F = self.d_sae
        cum = np.zeros((F, self.hist_counts.shape[1] + 1), np.int64)
        np.cumsum(self.hist_counts, axis=1, out=cum[:, 1:])  # cum[:, i]: values < edges[i]
        inner = self.quantile_bounds[:, 1:-1].astype(np.float64)  # [F, n-1]
        idx = np.searchsorted(self.hist_edges, inner, side="left")  # [F, n-1]
        below = np.take_along_axis(cum, idx, axis=1)
        bounds = np.concatenate([np.zeros((F, 1), np.int64), below, self.count[:, None]], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diff(bounds, axis=1) / self.count[:, None].astype(np.float64)

    def example_refs(self) -> list[ExampleRef]:
        """Every chosen example (top lists, then quantile bins), feature by feature.

        Built on the first call; the arrays are not meant to change afterwards."""
        if self._refs is None:
            refs: list[ExampleRef] = []
            for f, r in zip(*np.nonzero(self.top_windows >= 0), strict=True):
                refs.append(
                    ExampleRef(
                        int(f),
                        "top",
                        None,
                        int(r),
                        int(self.top_windows[f, r]),
                        int(self.top_positions[f, r]),
                        float(self.top_values[f, r]),
                    )
                )
            for f, b, r in zip(*np.nonzero(self.quantile_windows >= 0), strict=True):
                refs.append(
                    ExampleRef(
                        int(f),
                        "quantile",
                        int(b),
                        int(r),
                        int(self.quantile_windows[f, b, r]),
                        int(self.quantile_positions[f, b, r]),
                        float(self.quantile_values[f, b, r]),
                    )
                )
            self._refs = refs
        return list(self._refs)
