"""Feature importance under ablation on the committed demo model and SAE."""

from __future__ import annotations

import pytest
import torch

from workers.engine.activations import feature_activations
from workers.engine.hooks import active_hook_count
from workers.engine.importance import activation_pool, choose_contexts, feature_importance
from workers.engine.interventions import FeatureStats

TEXTS = [
    "The cat sat on the mat and the dog ran in the park.",
    "She said that the weather was fine, and they went out to play.",
    "In the morning he walked to the church with his mother.",
    "It was a long time before the men came back to the house.",
    "The President said that the government would not change its policy.",
    "There were three of them in the room when the door opened.",
]


@pytest.fixture
def windows(demo_att):
    """Each text's token ids and the max activation of every feature on it (BOS left out)."""
    rows = feature_activations(demo_att, TEXTS)
    ids = [r.token_ids for r in rows]
    peaks = torch.stack([r.values[1:].max(0).values for r in rows])  # [texts, d_sae]
    return ids, peaks


def test_zero_ablating_a_feature_that_never_fires_changes_nothing(demo_att, windows):
    ids, peaks = windows
    silent = int(torch.nonzero(peaks.max(0).values == 0)[0])
    (res,) = feature_importance(demo_att, {silent: ids}, methods=("zero",))
    assert res.n_contexts == len(TEXTS)
    assert res.loss_delta["zero"] == 0.0  # exactly: x is unchanged bit for bit
    assert res.up == [] and res.down == []


def test_ablating_a_strong_feature_raises_loss_on_its_contexts(demo_att, windows):
    ids, peaks = windows
    strongest = int(peaks.max(0).values.argmax())
    contexts = [c for c, p in zip(ids, peaks[:, strongest], strict=True) if p > 0]
    stats = {strongest: FeatureStats(mean=0.05, samples=[0.0] * 8 + [1.0, 2.0])}
    (res,) = feature_importance(demo_att, {strongest: contexts}, stats=stats)
    assert res.loss_delta["zero"] > 0
    assert set(res.loss_delta) == {"zero", "mean", "resample"}
    assert res.n_predictions == sum(len(c) - 1 for c in contexts)
    assert res.down, "zero ablation lowers the probability of some token"
    assert all(v < 0 for _, v in res.down) and all(v > 0 for _, v in res.up)


def test_features_batched_together_get_the_same_result_as_alone(demo_att, windows):
    ids, peaks = windows
    a, b = (int(i) for i in peaks.max(0).values.topk(2).indices)
    together = feature_importance(
        demo_att, {a: ids[:3], b: ids[3:]}, methods=("zero",), batch_size=6
    )
    alone = feature_importance(demo_att, {a: ids[:3]}, methods=("zero",), batch_size=3)
    assert together[0].feature == a
    assert together[0].loss_delta["zero"] == pytest.approx(alone[0].loss_delta["zero"], abs=1e-5)


def test_progress_is_reported_per_batch_and_no_hook_is_left(demo_att, windows):
    ids, peaks = windows
    seen = []
    f = int(peaks.max(0).values.argmax())
    feature_importance(
        demo_att,
        {f: ids},
        methods=("zero",),
        batch_size=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(2.0, 6), (4.0, 6), (5.0, 6), (6.0, 6)]  # clean and ablated pass of each batch
    assert active_hook_count(demo_att.lm) == 0


def test_mean_ablation_without_stats_fails_before_any_forward_pass(demo_att, windows):
    ids, _ = windows
    with pytest.raises(ValueError, match="needs FeatureStats.mean"):
        feature_importance(demo_att, {3: ids}, methods=("mean",))


def test_an_unknown_method_is_refused(demo_att):
    with pytest.raises(ValueError, match="unknown ablation 'clamp'"):
        feature_importance(demo_att, {0: [[0, 1]]}, methods=("clamp",))


def test_activation_pool_is_zero_with_probability_one_minus_density():
    pool = activation_pool(
        density=0.25, hist_edges=[1.0, 2.0, 3.0], hist_counts=[3, 1], size=100, seed=1
    )
    assert len(pool) == 100
    assert sum(v == 0.0 for v in pool) == 75
    assert all(1.0 <= v <= 3.0 for v in pool if v)


def test_activation_pool_of_a_dead_feature_is_all_zero():
    assert activation_pool(density=0.0, hist_edges=[], hist_counts=[], size=4) == [0.0] * 4


def test_contexts_are_half_top_examples_and_half_quantile_samples_from_the_top_bin_down():
    top = [[1, i] for i in range(10)]
    bins = [[[2, 0], [2, 1]], [[3, 0], [3, 1]]]  # lowest bin first
    assert choose_contexts(top, bins, 6) == [[1, 0], [1, 1], [1, 2], [3, 0], [2, 0], [3, 1]]


def test_a_short_side_leaves_its_share_to_the_other():
    assert choose_contexts([[1, 0]], [[[2, 0], [2, 1], [2, 2]]], 3) == [[1, 0], [2, 0], [2, 1]]
    assert len(choose_contexts([[1, i] for i in range(5)], [], 4)) == 4


def test_an_open_last_histogram_bin_gives_its_lower_edge():
    pool = activation_pool(density=1.0, hist_edges=[4.0, float("inf")], hist_counts=[2], size=3)
    assert pool == [4.0, 4.0, 4.0]
