"""Indexing: the streaming statistics pass agrees with a brute-force reference, shards merge
exactly, and the chosen examples carry their windows' values.

The reference sorts every (feature, value, window, pos) of the corpus in plain Python; it
reads the same activations as the pass (same batches, same encoded tokens), so comparisons
are exact (==). An independent check against sae-lens's own encode is in
test_indexing_saelens.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from workers.engine.activations import hooked_features, sparse_features
from workers.engine.feature_stats import FeatureStats
from workers.engine.indexing import (
    IndexingCancelled,
    Shard,
    Windows,
    bos_feature_values,
    candidate_values,
    chosen_examples,
    index_corpus,
    index_shard,
    make_windows,
    rerun_values,
)
from workers.engine.stat_kernels import POS_BITS, sample_hash, token_key
from workers.engine.stats import FeatureStatsAccumulator

CONTEXT = 16
BATCH = 4
TOKENS = 900
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "while",
    "dogs",
    "ran",
    "far",
    "in",
    "parks",
    "and",
    "1",
    "2",
    "3",
    "numbers",
    "were",
    "small",
    "she",
    "said",
    "that",
    "weather",
    "was",
    "fine",
    "so",
    "they",
    "went",
    "out",
    "to",
    "play",
]
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


def _documents(n: int = 60, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(n)]


@pytest.fixture
def windows(tiny_att) -> Windows:
    return make_windows(tiny_att.lm, _documents(), context=CONTEXT, tokens=TOKENS)


def assert_stats_equal(a: FeatureStats, b: FeatureStats) -> None:
    assert a.n_tokens == b.n_tokens
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def reference(att, windows: Windows, include_bos: bool = False) -> tuple[list, int]:
    """Every (feature, value, window, pos) with value > 0 on counted tokens, and the count."""
    entries, n_tokens = [], 0
    for b in range(0, len(windows), BATCH):
        ids = list(range(b, min(b + BATCH, len(windows))))
        input_ids, real = windows.batch(ids, att.lm.pad_token_id, att.lm.device)
        counted = real.clone()
        counted[:, 0] = include_bos
        n_tokens += int(counted.sum())
        nz = sparse_features(att, input_ids, real, counted)
        for r, p, f, v in zip(nz.row, nz.pos, nz.feature, nz.value, strict=True):
            entries.append((int(f), float(v), ids[int(r)], int(p)))
    return entries, n_tokens


def window_maxima(entries: list) -> list:
    """(feature, window max, window, first position of the max) of every firing pair."""
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for f, v, w, p in entries:
        old = best.get((f, w))
        if old is None or v > old[0] or (v == old[0] and p < old[1]):
            best[(f, w)] = (v, p)
    return [(f, v, w, p) for (f, w), (v, p) in best.items()]


def _in_bin(v: float, bounds: np.ndarray, k: int) -> bool:
    """Bin k is [b_k, b_k+1), the last one [b_n-1, max], the first (0, b_1)."""
    last = k == len(bounds) - 2
    return v > 0 and v >= bounds[k] and (v <= bounds[k + 1] if last else v < bounds[k + 1])


def _index(att, windows: Windows, **kw) -> FeatureStats:
    return index_corpus(
        att, windows, batch_size=BATCH, top_k=6, n_quantiles=3, per_quantile=2, **kw
    )


# ---- the accumulator against the reference -------------------------------------------------


def test_density_max_and_mean_match_the_reference(tiny_att, windows):
    stats = _index(tiny_att, windows)
    entries, n_tokens = reference(tiny_att, windows)
    assert stats.n_tokens == n_tokens
    for f in range(tiny_att.d_sae):
        vals = [v for g, v, _, _ in entries if g == f]
        assert stats.count[f] == len(vals)
        assert stats.density[f] == len(vals) / n_tokens
        assert stats.max[f] == (max(vals) if vals else 0.0)
        assert stats.mean[f] == pytest.approx(np.mean(vals) if vals else 0.0, abs=1e-6)


def test_histogram_counts_every_value_in_its_bin(tiny_att, windows):
    stats = _index(tiny_att, windows)
    entries, _ = reference(tiny_att, windows)
    expected = np.zeros_like(stats.hist_counts)
    for f, v, _, _ in entries:  # bin j holds edges[j] <= v < edges[j+1]
        expected[f, np.searchsorted(stats.hist_edges, v, side="right") - 1] += 1
    np.testing.assert_array_equal(stats.hist_counts, expected)
    edges, counts = stats.histogram(int(np.argmax(stats.count)))
    assert len(edges) == len(counts) + 1 and counts.sum() == stats.count.max()


@pytest.mark.parametrize("compact_at", [1, 1 << 16])  # 1: prefilters and compaction every batch
def test_top_examples_are_windows_ordered_by_max_then_position_then_window(
    tiny_att, windows, compact_at
):
    stats = _index(tiny_att, windows, compact_at=compact_at)
    pairs = window_maxima(reference(tiny_att, windows)[0])
    for f in range(tiny_att.d_sae):
        best = sorted(((-v, p, w) for g, v, w, p in pairs if g == f))[:6]
        got = [
            (-float(v), int(p), int(w))
            for v, w, p in zip(
                stats.top_values[f], stats.top_windows[f], stats.top_positions[f], strict=True
            )
            if w >= 0
        ]
        assert got == best


def test_a_window_fills_one_top_slot_even_where_it_fires_on_many_tokens(tiny_att, windows):
    stats = _index(tiny_att, windows)
    entries, _ = reference(tiny_att, windows)
    per_pair: dict[tuple[int, int], int] = {}
    for f, _, w, _ in entries:
        per_pair[(f, w)] = per_pair.get((f, w), 0) + 1
    assert max(per_pair.values()) > 1  # the corpus has windows that fire several times
    for f in range(tiny_att.d_sae):
        w = stats.top_windows[f][stats.top_windows[f] >= 0].tolist()
        assert len(w) == len(set(w))


@pytest.mark.parametrize("compact_at", [1, 1 << 16])
def test_quantile_samples_are_the_smallest_hashes_of_their_bin(tiny_att, windows, compact_at):
    stats = _index(tiny_att, windows, seed=7, compact_at=compact_at)
    pairs = window_maxima(reference(tiny_att, windows)[0])
    for f in range(tiny_att.d_sae):
        mine = [(v, w, p) for g, v, w, p in pairs if g == f]
        bounds = stats.quantile_bounds[f]
        for k in range(3):
            members = [(v, w, p) for v, w, p in mine if _in_bin(v, bounds, k)]
            keys = torch.tensor(
                [token_key(torch.tensor(w), torch.tensor(p)).item() for _, w, p in members],
                dtype=torch.long,
            )
            hashes = sample_hash(keys, torch.full_like(keys, f), 7).tolist()
            chosen = sorted(zip(hashes, keys.tolist(), members, strict=True))[:2]
            want = sorted((-v, p, w) for _, _, (v, w, p) in chosen)
            got = [
                (-float(v), int(p), int(w))
                for v, w, p in zip(
                    stats.quantile_values[f, k],
                    stats.quantile_windows[f, k],
                    stats.quantile_positions[f, k],
                    strict=True,
                )
                if w >= 0
            ]
            assert got == want, (f, k)


def test_quantile_examples_lie_within_their_bin_bounds(tiny_att, windows):
    stats = _index(tiny_att, windows)
    b = stats.quantile_bounds  # [F, 4]
    for f, k, r in zip(*np.nonzero(stats.quantile_windows >= 0), strict=True):
        v = stats.quantile_values[f, k, r]
        assert _in_bin(float(v), b[f], int(k))


def test_quantile_fractions_count_every_activation_of_each_bin(tiny_att, windows):
    stats = _index(tiny_att, windows)
    entries, _ = reference(tiny_att, windows)
    fractions = stats.quantile_fractions()  # [F, 3]
    by_feature: dict[int, list[float]] = {}
    for f, v, _, _ in entries:
        by_feature.setdefault(f, []).append(v)
    for f, values in by_feature.items():
        b = stats.quantile_bounds[f]
        expected = [sum(_in_bin(v, b, k) for v in values) / len(values) for k in range(3)]
        np.testing.assert_allclose(fractions[f], expected, err_msg=f"feature {f}")
    assert np.isnan(fractions[stats.dead]).all()


def test_quantile_bounds_sit_less_than_a_sixteenth_below_k_max_over_n(tiny_att, windows):
    stats = _index(tiny_att, windows)
    live = stats.max > 0
    target = stats.max[live, None].astype(np.float64) * np.arange(1, 3) / 3
    inner = stats.quantile_bounds[live, 1:3]
    assert np.all(inner <= target * (1 + 1e-6)) and np.all(inner > target * (1 - 1 / 16))
    assert np.all(np.diff(stats.quantile_bounds[live], axis=1) > 0)


# ---- shards, BOS, dead features ----------------------------------------------------------


def test_three_shards_merged_equal_one_pass(tiny_att, windows):
    single = _index(tiny_att, windows)
    kw = {"batch_size": BATCH, "top_k": 6, "n_quantiles": 3, "per_quantile": 2}
    parts = [index_shard(tiny_att, windows, shard=Shard(i, 3), **kw) for i in (2, 0, 1)]
    merged = parts[0].merge(parts[1]).merge(parts[2]).finalize()
    assert_stats_equal(merged, single)


def test_shards_partition_the_windows(tiny_att, windows):
    seen = [
        index_shard(tiny_att, windows, batch_size=BATCH, shard=Shard(i, 3)).n_tokens
        for i in range(3)
    ]
    assert sum(seen) == _index(tiny_att, windows).n_tokens


def test_a_shard_round_trips_through_its_state_dict(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, shard=Shard(1, 2))
    again = FeatureStatsAccumulator.from_state_dict(acc.state_dict())
    assert_stats_equal(again.finalize(), acc.finalize())


def test_bos_is_excluded_by_default(tiny_att, windows):
    stats = _index(tiny_att, windows)
    assert stats.settings["include_bos"] is False
    assert stats.n_tokens == windows.n_tokens - len(windows)
    assert not np.any(stats.top_positions == 0)


def test_bos_is_counted_when_asked(tiny_att, windows):
    stats = _index(tiny_att, windows, include_bos=True)
    entries, n_tokens = reference(tiny_att, windows, include_bos=True)
    assert stats.settings["include_bos"] is True
    assert stats.n_tokens == n_tokens == windows.n_tokens
    assert stats.count.sum() == len(entries)


def test_features_that_never_fire_are_marked_dead(tiny_att, windows):
    with torch.no_grad():
        tiny_att.sae.b_enc[:3] = -1e4  # features 0..2 can never fire
    stats = _index(tiny_att, windows)
    assert stats.dead[:3].all() and not stats.dead[3:].all()
    assert (stats.max[:3] == 0).all() and (stats.top_windows[:3] == -1).all()
    assert stats.histogram(0)[1].size == 0


# ---- windows, progress, cancel, bad input ----------------------------------------------------


def test_windows_start_with_bos_and_stop_at_the_token_budget(tiny_att, windows):
    assert windows.n_tokens == TOKENS
    assert all(windows[i].token_ids[0] == tiny_att.lm.bos_token_id for i in range(len(windows)))
    assert windows.lengths().max() == CONTEXT
    w = windows[3]
    doc = tiny_att.lm.tokenizer(_documents()[w.doc], add_special_tokens=False)["input_ids"]
    assert w.token_ids[1:].tolist() == doc[w.start : w.start + len(w.token_ids) - 1]


def test_progress_reports_tokens_after_every_batch(tiny_att, windows):
    calls = []
    index_corpus(tiny_att, windows, batch_size=BATCH, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) == -(-len(windows) // BATCH) and calls[-1] == (TOKENS, TOKENS)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_cancel_stops_the_pass_before_the_next_batch(tiny_att, windows):
    done = []
    with pytest.raises(IndexingCancelled, match="cancelled after"):
        index_corpus(
            tiny_att,
            windows,
            batch_size=BATCH,
            progress=lambda d, t: done.append(d),
            cancel=lambda: len(done) >= 2,
        )
    assert len(done) == 2


def test_a_budget_beyond_the_corpus_indexes_all_of_it(tiny_att):
    docs = _documents(5)
    stats = index_corpus(tiny_att, docs, context=CONTEXT, tokens=10**6)
    n_doc_tokens = sum(
        len(tiny_att.lm.tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs
    )
    assert stats.n_tokens == n_doc_tokens  # every document token, each window's BOS excluded
    assert stats.settings["corpus_tokens"] == n_doc_tokens + stats.settings["corpus_windows"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tokens": 0}, "tokens must be a positive"),
        ({"tokens": 10, "context": 10_000}, "longer than the model"),
    ],
)
def test_bad_sizes_are_refused(tiny_att, kwargs, message):
    with pytest.raises(ValueError, match=message):
        index_corpus(tiny_att, _documents(), **kwargs)


def test_an_empty_corpus_is_refused(tiny_att):
    with pytest.raises(ValueError, match="corpus is empty"):
        index_corpus(tiny_att, ["", ""], context=CONTEXT, tokens=100)


# ---- examples -----------------------------------------------------------------------------


def _examples(att, windows, **kw):
    acc = index_shard(
        att,
        windows,
        batch_size=BATCH,
        top_k=6,
        n_quantiles=3,
        per_quantile=2,
        log_max_bytes=1 << 30,
        **kw,
    )
    table = candidate_values(acc)
    stats = acc.finalize()
    return stats, table, list(chosen_examples(stats, windows, table, att, chunk=50))


def test_example_values_equal_a_direct_computation_bos_included(tiny_att, windows):
    stats, _, chunks = _examples(tiny_att, windows)
    assert len(chunks) > 1 and sum(map(len, chunks)) == len(stats.example_refs())
    for c in chunks[:3]:
        for i in range(len(c)):
            w = int(c.window[i])
            ids = torch.tensor(windows[w].token_ids)[None]
            direct = hooked_features(tiny_att, ids)[0, :, int(c.feature[i])]  # [pos]
            got = torch.from_numpy(c.values(i, ids.shape[1]))
            # BOS (position 0) shows its true value though the statistics leave it out
            torch.testing.assert_close(got, direct, rtol=1e-5, atol=1e-5)


def test_each_example_states_its_windows_maximum_at_the_first_position(tiny_att, windows):
    _, _, chunks = _examples(tiny_att, windows)
    for c in chunks:
        for i in range(len(c)):
            v = c.values(i, CONTEXT)[1:]  # BOS is not counted
            assert c.max_value[i] == v.max()
            assert c.max_position[i] == 1 + int(np.argmax(v))


def test_bos_reads_the_same_value_in_every_window(tiny_att, windows):
    bos = bos_feature_values(tiny_att)
    assert (bos > 0).any()  # the test SAE fires on BOS
    input_ids, real = windows.batch([0, 5, 9], tiny_att.lm.pad_token_id, tiny_att.lm.device)
    direct = hooked_features(tiny_att, input_ids, real)[:, 0, :]  # [3, d_sae]
    for row in direct:
        np.testing.assert_allclose(row.numpy(), bos, rtol=1e-5, atol=1e-6)


def test_re_running_the_chosen_windows_gives_the_logged_values_exactly(tiny_att, windows):
    stats, table, _ = _examples(tiny_att, windows)
    f, w = [], []
    for r in stats.example_refs():
        f.append(r.feature), w.append(r.window)
    f, w = np.array(f), np.array(w)
    again = rerun_values(tiny_att, windows, f, w, batch_size=BATCH)
    np.testing.assert_array_equal(again.dense(f, w, CONTEXT), table.dense(f, w, CONTEXT))
    n = len(windows)
    pair = again.feature.astype(np.int64) * n + (again.key >> POS_BITS)
    assert np.isin(pair, f * n + w).all()  # nothing but the chosen pairs


def test_re_running_an_unknown_window_is_refused(tiny_att, windows):
    with pytest.raises(ValueError, match="unknown window"):
        rerun_values(tiny_att, windows, np.array([0]), np.array([len(windows)]))
