"""Chosen examples' values come from the pass's in-memory log, equal to re-running windows."""

from __future__ import annotations

import numpy as np
import pytest

from workers.engine.candidates import (
    CandidateValues,
    shard_result_from_bytes,
    shard_result_to_bytes,
)
from workers.engine.indexing import (
    Shard,
    candidate_values,
    chosen_examples,
    index_shard,
    make_windows,
)
from workers.engine.stats import FeatureStatsAccumulator

from .test_indexing import BATCH, CONTEXT, TOKENS, _documents


@pytest.fixture
def windows(tiny_att):
    return make_windows(tiny_att.lm, _documents(), context=CONTEXT, tokens=TOKENS)


def _assert_same_examples(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert (x.feature, x.window, x.pos) == (y.feature, y.window, y.pos)
        np.testing.assert_array_equal(x.token_ids, y.token_ids)
        np.testing.assert_array_equal(x.values, y.values)


def test_logged_values_equal_a_second_pass(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30)
    table = candidate_values(acc)
    stats = acc.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, table),
        chosen_examples(stats, windows, None, tiny_att, batch_size=BATCH),
    )


def test_example_values_peak_at_the_chosen_token(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30)
    table = candidate_values(acc)
    stats = acc.finalize()
    for ex, ref in zip(chosen_examples(stats, windows, table), stats.example_refs(), strict=True):
        assert ex.values[ex.pos] == np.float32(ref.value)
        assert ex.values[0] == 0.0  # BOS is not counted, so it reads 0


def test_a_warm_prefilter_logs_only_pairs_that_may_be_chosen(tiny_att, windows):
    # compact_at=8: thresholds are refreshed every few batches, so most pairs are not logged.
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=8)
    assert 0 < acc.log._n < int(acc.count.sum())  # fewer entries than counted non-zeros
    table = candidate_values(acc)
    stats = acc.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, table),
        chosen_examples(stats, windows, None, tiny_att, batch_size=BATCH),
    )


@pytest.mark.parametrize("compact_at", [1 << 16, 8])
def test_a_single_shard_table_of_its_chosen_examples_gives_the_same_examples(
    tiny_att, windows, compact_at
):
    full = index_shard(
        tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=compact_at
    )
    alone = index_shard(
        tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=compact_at
    )
    full_table, chosen_table = candidate_values(full), candidate_values(alone, only_chosen=True)
    assert len(chosen_table.key) < len(full_table.key)
    stats = alone.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, chosen_table),
        chosen_examples(full.finalize(), windows, full_table),
    )
    _assert_same_examples(
        chosen_examples(stats, windows, chosen_table),
        chosen_examples(stats, windows, None, tiny_att, batch_size=BATCH),
    )


@pytest.mark.parametrize("compact_at", [1 << 16, 8])
def test_three_shards_tables_give_the_single_pass_examples(tiny_att, windows, compact_at):
    one = index_shard(
        tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=compact_at
    )
    one_table = candidate_values(one)
    accs, tables = [], []
    for i in range(3):
        acc = index_shard(
            tiny_att,
            windows,
            batch_size=BATCH,
            shard=Shard(i, 3),
            log_max_bytes=1 << 30,
            compact_at=compact_at,
        )
        tables.append(candidate_values(acc))
        # Through bytes, as between the worker that ran the shard and the one that merges.
        state, table = shard_result_from_bytes(shard_result_to_bytes(acc.state_dict(), tables[-1]))
        accs.append(FeatureStatsAccumulator.from_state_dict(state))
        tables[-1] = table
    merged = accs[0].merge(accs[1]).merge(accs[2])
    _assert_same_examples(
        chosen_examples(one.finalize(), windows, one_table),
        chosen_examples(merged.finalize(), windows, CandidateValues.concat(tables)),
    )


def test_an_overflowing_log_falls_back_to_a_second_pass(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=64)
    assert candidate_values(acc) is None
    with pytest.raises(ValueError, match="needs a candidate table or a model"):
        chosen_examples(acc.finalize(), windows, None)
