"""The statistics accumulator on synthetic activations: ties, compaction, sparse input,
merging and serialisation. (Its exact primitives are in test_stat_kernels.py; agreement with
a brute-force reference on a real model is in test_indexing.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.engine.feature_stats import FeatureStats
from workers.engine.stats import FeatureStatsAccumulator

FIELDS = (
    "count",
    "sum",
    "max",
    "hist_edges",
    "hist_counts",
    "top_values",
    "top_windows",
    "top_positions",
    "quantile_bounds",
    "quantile_values",
    "quantile_windows",
    "quantile_positions",
)


def assert_stats_equal(a: FeatureStats, b: FeatureStats) -> None:
    assert a.n_tokens == b.n_tokens
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _tied_acts(seed: int = 0, shape: tuple[int, int, int] = (12, 10, 40)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    acts = torch.rand(*shape, generator=gen).mul(4).round().div(4)  # many exact ties
    acts[acts < 1.5] = 0
    return acts


def test_a_window_is_one_top_example_at_its_first_maximum():
    # Each window has three equal values; it used to fill three top slots, one per token.
    # An example is now a window, stated at its maximum's first position.
    acc = FeatureStatsAccumulator(1, top_k=3)
    acts = torch.zeros(3, 4, 1)
    acts[:, 1:, 0] = 2.0
    acc.update(acts[[2, 0]], torch.tensor([2, 0]))
    acc.update(acts[[1]], torch.tensor([1]))
    stats = acc.finalize()
    assert stats.top_windows[0].tolist() == [0, 1, 2]
    assert stats.top_positions[0].tolist() == [1, 1, 1]


def test_equal_window_maxima_rank_by_position_then_window():
    acc = FeatureStatsAccumulator(1, top_k=4)
    acts = torch.zeros(4, 5, 1)
    acts[0, 3, 0] = acts[1, 1, 0] = acts[2, 3, 0] = 2.0  # ties at positions 3, 1, 3
    acts[3, 4, 0] = 3.0
    acts[1, 2, 0] = 1.0  # below window 1's maximum: not an example of its own
    acc.update(acts, torch.arange(4))
    stats = acc.finalize()
    assert stats.top_windows[0].tolist() == [3, 1, 0, 2]
    assert stats.top_positions[0].tolist() == [4, 1, 3, 3]
    assert stats.top_values[0].tolist() == [3.0, 2.0, 2.0, 2.0]
    assert stats.count.tolist() == [5]  # statistics stay per token


def test_quantile_samples_are_one_per_window():
    acts = _tied_acts(2)
    acc = FeatureStatsAccumulator(40, top_k=2, n_quantiles=3, per_quantile=5)
    acc.update(acts, torch.arange(12))
    stats = acc.finalize()
    for f in range(40):
        w = stats.quantile_windows[f][stats.quantile_windows[f] >= 0]
        assert len(set(w.tolist())) == len(w)


def test_results_do_not_depend_on_when_candidates_are_compacted():
    acts = _tied_acts(0)
    out = []
    for compact_at in (1, 1 << 16):
        acc = FeatureStatsAccumulator(
            40, top_k=5, n_quantiles=4, per_quantile=3, compact_at=compact_at
        )
        for b in range(0, 12, 3):
            acc.update(acts[b : b + 3], torch.arange(b, b + 3))
        out.append(acc.finalize())
    assert_stats_equal(*out)


def test_sparse_and_dense_batches_give_the_same_statistics():
    gen = torch.Generator().manual_seed(1)
    acts = torch.rand(4, 8, 16, generator=gen).sub(0.6).clamp(min=0)
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[:, 0] = False
    dense, sparse = FeatureStatsAccumulator(16), FeatureStatsAccumulator(16)
    dense.update(acts, torch.arange(4), mask)
    sparse.update(acts.to_sparse(), torch.arange(4), mask)
    assert_stats_equal(dense.finalize(), sparse.finalize())


def test_merging_different_settings_is_refused():
    with pytest.raises(ValueError, match="different settings"):
        FeatureStatsAccumulator(8, top_k=3).merge(FeatureStatsAccumulator(8, top_k=4))


def test_merging_in_any_order_gives_the_same_result():
    acts = _tied_acts(1)
    shards = []
    for part in (range(4), range(4, 8), range(8, 12)):
        acc = FeatureStatsAccumulator(40, top_k=4, n_quantiles=3, per_quantile=2, seed=5)
        acc.update(acts[list(part)], torch.tensor(list(part)))
        shards.append(acc)
    one = FeatureStatsAccumulator(40, top_k=4, n_quantiles=3, per_quantile=2, seed=5)
    one.update(acts, torch.arange(12))
    a, b, c = shards
    merged = FeatureStatsAccumulator.from_state_dict(c.state_dict()).merge(a).merge(b)
    assert_stats_equal(merged.finalize(), one.finalize())


def test_sums_are_exact_in_fixed_point():
    acc = FeatureStatsAccumulator(1)
    acc.update(torch.tensor([[[0.5], [0.25], [1e-9]]]), torch.tensor([0]))
    assert acc.finalize().sum.tolist() == [0.75]


@pytest.mark.parametrize(
    "kwargs",
    [{"top_k": 0}, {"hist_bins_per_octave": 3}, {"n_quantiles": 16}, {"hist_octaves": (3, 3)}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        FeatureStatsAccumulator(8, **kwargs)
