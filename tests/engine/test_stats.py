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


def test_top_examples_break_value_ties_by_window_then_position():
    acc = FeatureStatsAccumulator(1, top_k=3)
    acts = torch.zeros(3, 4, 1)
    acts[:, 1:, 0] = 2.0  # nine equal values
    acc.update(acts[[2, 0]], torch.tensor([2, 0]))
    acc.update(acts[[1]], torch.tensor([1]))
    stats = acc.finalize()
    assert stats.top_windows[0].tolist() == [0, 0, 0]
    assert stats.top_positions[0].tolist() == [1, 2, 3]


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
