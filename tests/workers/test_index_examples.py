"""The merge step's examples as the storage takes them: each used window once, examples in
sparse chunks (no database: the arrays only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.saes.example_copy import ExampleArrays, WindowArrays
from tests.engine.builders import CORPUS, build_sae, build_tiny_gpt2, build_tokenizer
from workers.engine.hooks import family_of
from workers.engine.indexing import candidate_values, index_shard, make_windows
from workers.engine.loading import LoadedModel, attach_sae
from workers.index import offline_labels, run_examples


@pytest.fixture(scope="module")
def indexed():
    tokenizer = build_tokenizer()
    model = build_tiny_gpt2(tokenizer)
    lm = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family_of(model),
        name="tiny",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    att = attach_sae(lm, build_sae(lm.d_model, d_sae=32))
    windows = make_windows(lm, CORPUS * 20, context=16, tokens=500)
    acc = index_shard(att, windows, batch_size=4, top_k=4, log_max_bytes=1 << 30)
    table = candidate_values(acc)
    stats = acc.finalize()
    rows, stream = run_examples(stats, windows, table, att, batch_size=4, chunk=40)
    return att, stats, windows, rows, list(stream)


def test_each_window_an_example_uses_is_stored_once(indexed):
    _, _, windows, rows, chunks = indexed
    assert isinstance(rows, WindowArrays)
    used = np.unique(np.concatenate([c.window for c in chunks]))
    np.testing.assert_array_equal(rows.number, used)
    for i, w in enumerate(rows.number.tolist()):
        n = rows.lengths[i]
        assert rows.token_ids[i, :n].tolist() == windows[w].token_ids.tolist()
        assert (rows.document[i], rows.offset[i]) == (windows.doc[w], windows.start[w])


def test_examples_come_in_sparse_chunks_that_peak_at_their_stated_maximum(indexed):
    _, stats, _, _, chunks = indexed
    assert len(chunks) > 1 and all(isinstance(c, ExampleArrays) for c in chunks)
    assert sum(len(c) for c in chunks) == len(stats.example_refs())
    for c in chunks:
        assert c.nz_values.dtype == np.float16 and c.nz_offsets[0] == 0
        assert c.nz_offsets[-1] == len(c.nz_positions) == len(c.nz_values)
        for i in range(len(c)):
            lo, hi = c.nz_offsets[i], c.nz_offsets[i + 1]
            pos = c.nz_positions[lo:hi]
            assert np.all(np.diff(pos) > 0)
            at = np.flatnonzero(pos == c.max_position[i])
            assert len(at) == 1
            assert float(c.nz_values[lo + at[0]]) == pytest.approx(c.max_value[i], rel=1e-3)


def test_offline_labels_read_the_peak_tokens_off_the_windows(indexed):
    att, stats, windows, _, _ = indexed
    facts = {"top_ids": [[0, 1, 2]] * stats.d_sae}
    out = offline_labels(stats, windows, facts, att.lm.vocab_strings())
    assert len(out) == stats.d_sae and all(isinstance(x, str) for x in out)
