"""Indexing checked against an independent recomputation: the HF model's own hidden states and
sae-lens's own ``SAE.encode`` on an SAE written and read back through sae-lens.

Tolerances: activations are recomputed without padding, batching or chunking, so they agree
to float32 rounding (1e-5); stored example values are float16 (rtol 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens import SAE

from tests.engine.builders import build_sae
from workers.engine.indexing import candidate_values, chosen_examples, index_shard, make_windows
from workers.engine.loading import attach_sae

from .test_indexing import _documents

CONTEXT, BATCH, TOP = 16, 4, 5


@pytest.fixture
def indexed(tiny_lm, tmp_path):
    build_sae(
        tiny_lm.d_model, d_sae=48, hook_name="blocks.1.hook_resid_pre", architecture="jumprelu"
    ).save_model(str(tmp_path))
    att = attach_sae(tiny_lm, SAE.load_from_disk(str(tmp_path), device="cpu"))
    windows = make_windows(tiny_lm, _documents(), context=CONTEXT, tokens=600)
    acc = index_shard(
        att,
        windows,
        batch_size=BATCH,
        top_k=TOP,
        n_quantiles=3,
        per_quantile=2,
        log_max_bytes=1 << 30,
    )
    table = candidate_values(acc)
    stats = acc.finalize()
    chunks = list(chosen_examples(stats, windows, table, att, chunk=64))
    reference = SAE.load_from_disk(str(tmp_path), device="cpu")
    values = []
    with torch.no_grad():
        for i in range(len(windows)):
            ids = torch.from_numpy(windows[i].token_ids)[None]  # [1, len]
            hidden = tiny_lm.model(ids, output_hidden_states=True).hidden_states[1]  # resid_pre 1
            values.append(reference.encode(hidden)[0].numpy())  # [len, d_sae]
    return stats, windows, chunks, values


def test_top_examples_are_distinct_windows_ranked_by_their_maximum(indexed):
    stats, _, _, values = indexed
    for f in range(stats.d_sae):
        got = stats.top_windows[f][stats.top_windows[f] >= 0].tolist()
        assert len(got) == len(set(got))
        ranked = sorted(
            (-v[1:, f].max(), int(np.argmax(v[1:, f])), w)
            for w, v in enumerate(values)
            if v[1:, f].max() > 0
        )
        assert got == [w for _, _, w in ranked[:TOP]]


def test_each_example_states_its_windows_maximum_and_first_position(indexed):
    _, _, chunks, values = indexed
    for c in chunks:
        for i in range(len(c)):
            counted = values[c.window[i]][1:, c.feature[i]]  # BOS excluded
            assert c.max_value[i] == pytest.approx(counted.max(), rel=1e-5, abs=1e-6)
            assert c.max_position[i] == 1 + int(np.argmax(counted))


def test_stored_values_match_with_bos_at_its_true_value(indexed):
    _, _, chunks, values = indexed
    bos_fires = 0
    for c in chunks:
        for i in range(len(c)):
            expected = values[c.window[i]][:, c.feature[i]]  # [len]
            stored = c.values(i, len(expected)).astype(np.float16)
            np.testing.assert_allclose(stored, expected, rtol=1e-3, atol=1e-4)
            bos_fires += bool(expected[0] > 0)
    assert bos_fires > 0  # the check above covered non-zero BOS values


def test_statistics_leave_bos_out(indexed):
    stats, windows, _, values = indexed
    counted = np.concatenate([v[1:] for v in values])  # [tokens - windows, d_sae]
    assert stats.n_tokens == windows.n_tokens - len(windows) == len(counted)
    np.testing.assert_array_equal(stats.count, (counted > 0).sum(0))
    np.testing.assert_allclose(stats.max, counted.max(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.sum, counted.sum(0), rtol=1e-4, atol=1e-4)
    assert (values[0][0] > 0).any()  # BOS fires: counting it would change these numbers
