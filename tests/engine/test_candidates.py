"""Chosen examples' values come from the pass's in-memory log, equal to re-running windows.

``chosen_examples`` takes the model in every call: with BOS excluded from the statistics, the
log has no BOS values and the examples read BOS's true value through the model."""

from __future__ import annotations

import numpy as np
import pytest

from workers.engine.candidates import (
    CandidateValues,
    shard_result_from_bytes,
    shard_result_to_bytes,
)
from workers.engine.indexing import (
    ExampleChunk,
    Shard,
    bos_feature_values,
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


CHUNK_FIELDS = (
    "feature",
    "kind",
    "bin",
    "rank",
    "window",
    "max_value",
    "max_position",
    "nz_offsets",
    "nz_positions",
    "nz_values",
)


def _assert_same_examples(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0 and len(a[0]) > 0
    for x, y in zip(a, b, strict=True):
        for name in CHUNK_FIELDS:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


def test_logged_values_equal_a_second_pass(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30)
    table = candidate_values(acc)
    stats = acc.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, table, tiny_att),
        chosen_examples(stats, windows, None, tiny_att, batch_size=BATCH),
    )


def test_example_values_peak_at_the_stated_token_and_bos_reads_its_value(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30)
    table = candidate_values(acc)
    stats = acc.finalize()
    bos = bos_feature_values(tiny_att)
    chunks: list[ExampleChunk] = list(chosen_examples(stats, windows, table, tiny_att))
    for c in chunks:
        for i in range(len(c)):
            v = c.values(i, CONTEXT)
            assert v[c.max_position[i]] == c.max_value[i] == v[1:].max()
            # BOS is not counted, yet shows its true value (it used to read 0)
            assert v[0] == bos[c.feature[i]]


def test_a_warm_prefilter_logs_only_pairs_that_may_be_chosen(tiny_att, windows):
    # compact_at=8: thresholds are refreshed every few batches, so most pairs are not logged.
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=8)
    assert 0 < acc.log._n < int(acc.count.sum())  # fewer entries than counted non-zeros
    table = candidate_values(acc)
    stats = acc.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, table, tiny_att),
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
        chosen_examples(stats, windows, chosen_table, tiny_att),
        chosen_examples(full.finalize(), windows, full_table, tiny_att),
    )
    _assert_same_examples(
        chosen_examples(stats, windows, chosen_table, tiny_att),
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
        chosen_examples(one.finalize(), windows, one_table, tiny_att),
        chosen_examples(merged.finalize(), windows, CandidateValues.concat(tables), tiny_att),
    )


def test_an_overflowing_log_falls_back_to_a_second_pass(tiny_att, windows):
    acc = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=64)
    assert candidate_values(acc) is None
    with pytest.raises(ValueError, match="needs a candidate table or a model"):
        chosen_examples(acc.finalize(), windows, None)


def test_a_pruned_log_gives_the_same_examples(tiny_att, windows, monkeypatch):
    from workers.engine import candidates

    whole = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=8)
    monkeypatch.setattr(candidates, "PRUNE_AT", 16)  # prune at nearly every compaction
    pruned = index_shard(tiny_att, windows, batch_size=BATCH, log_max_bytes=1 << 30, compact_at=8)
    assert pruned.log._n < whole.log._n
    stats = whole.finalize()
    _assert_same_examples(
        chosen_examples(stats, windows, candidate_values(pruned), tiny_att),
        chosen_examples(stats, windows, candidate_values(whole), tiny_att),
    )
