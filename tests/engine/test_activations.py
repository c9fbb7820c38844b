"""Per-token feature activations and the top features per token."""

from __future__ import annotations

import pytest
import torch

from tests.engine.builders import build_sae
from workers.engine.activations import (
    activations_per_sae,
    feature_activations,
    hooked_features,
    pad_batch,
    sparse_features,
    top_features_per_token,
)
from workers.engine.hooks import intercept, run_to_hook

TEXTS = ["The cat sat on the mat.", "A dog.", "She said that the weather was fine."]


def reference_features(att, text, prepend_bos=True):
    ids = att.lm.encode(text, prepend_bos=prepend_bos)[None]
    return att.encode(run_to_hook(att.lm, ids, None, att.hook_name))[0]  # [pos, d_sae]


def test_values_of_chosen_features_match_a_single_text_forward(tiny_att):
    rows = feature_activations(tiny_att, TEXTS, [5, 0, 17])
    for text, row in zip(TEXTS, rows, strict=True):
        full = reference_features(tiny_att, text)
        assert row.values.shape == (full.shape[0], 3)
        torch.testing.assert_close(row.values, full[:, [5, 0, 17]], rtol=1e-5, atol=1e-6)


def test_padding_in_a_batch_does_not_change_any_value(tiny_att):
    together = feature_activations(tiny_att, TEXTS, None, batch_size=3)
    alone = feature_activations(tiny_att, TEXTS, None, batch_size=1)
    for a, b in zip(together, alone, strict=True):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-6)


def test_all_features_are_returned_when_none_are_chosen(tiny_att):
    (row,) = feature_activations(tiny_att, "The cat", None)
    assert row.values.shape[-1] == tiny_att.d_sae and row.features is None


def test_tokens_come_as_strings_and_ids_with_bos_marked(tiny_att):
    (row,) = feature_activations(tiny_att, "The cat sat", [1])
    assert row.token_ids[0] == tiny_att.lm.bos_token_id
    assert row.is_bos == [True] + [False] * (len(row.token_ids) - 1)
    assert "".join(row.tokens[1:]) == "The cat sat"


def test_prepend_bos_false_leaves_no_bos(tiny_att):
    (row,) = feature_activations(tiny_att, "The cat sat", [1], prepend_bos=False)
    assert not any(row.is_bos) and "".join(row.tokens) == "The cat sat"


def test_an_unknown_feature_index_names_d_sae_and_runs_nothing(tiny_att):
    calls = []
    with (
        intercept(tiny_att.lm, "blocks.0.hook_resid_pre", calls.append),
        pytest.raises(ValueError, match=r"unknown feature index 64.*d_sae=64"),
    ):
        feature_activations(tiny_att, TEXTS, [1, 64])
    assert calls == []


def test_a_negative_feature_index_is_refused(tiny_att):
    with pytest.raises(ValueError, match="unknown feature index -1"):
        feature_activations(tiny_att, "The cat", [-1])


def test_one_bad_text_in_a_batch_fails_before_any_forward_pass(tiny_att):
    calls = []
    with (
        intercept(tiny_att.lm, "blocks.0.hook_resid_pre", calls.append),
        pytest.raises(ValueError, match="empty"),
    ):
        feature_activations(tiny_att, ["The cat", ""], [1], batch_size=1)
    assert calls == []


def test_a_text_longer_than_the_context_is_refused(tiny_att):
    with pytest.raises(ValueError, match="context is 64 tokens"):
        feature_activations(tiny_att, "word " * 200, [1])


def test_the_forward_pass_stops_at_the_sae_hook(tiny_lm, tiny_sae):
    from workers.engine.loading import attach_sae

    att = attach_sae(tiny_lm, tiny_sae)  # hook: blocks.1.hook_resid_post (the last block)
    final_norm_calls = []
    tiny_lm.model.transformer.ln_f.register_forward_hook(lambda *a: final_norm_calls.append(1))
    feature_activations(att, TEXTS, [0])
    assert final_norm_calls == []


def test_top_features_per_token_are_positive_sorted_and_at_most_k(tiny_att):
    result = top_features_per_token(tiny_att, "The cat sat on the mat.", k=3)
    full = reference_features(tiny_att, "The cat sat on the mat.")[1:]  # BOS left out
    assert [tok for tok, _ in result] == tiny_att.lm.token_strings(
        tiny_att.lm.encode("The cat sat on the mat.", prepend_bos=False)
    )
    for pos, (_, pairs) in enumerate(result):
        assert len(pairs) <= 3
        values = [v for _, v in pairs]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
        if pairs:
            assert pairs[0][1] == pytest.approx(float(full[pos].max()), rel=1e-5)


def test_top_features_can_include_bos(tiny_att):
    with_bos = top_features_per_token(tiny_att, "The cat", k=2, include_bos=True)
    assert len(with_bos) == len(top_features_per_token(tiny_att, "The cat", k=2)) + 1


def test_demo_activations_run_on_the_demo_sae(demo_att):
    (row,) = feature_activations(demo_att, "The jury said the city had no evidence.", [0, 1])
    assert row.values.shape[1] == 2 and torch.isfinite(row.values).all()


# --- several SAEs of one model: one forward pass -------------------------------------------------


@pytest.fixture
def three_atts(tiny_lm):
    """SAEs at three hooks of tiny_lm; the second was trained without BOS."""
    from workers.engine.loading import attach_sae

    specs = [
        ("blocks.1.hook_resid_post", True),
        ("blocks.0.hook_mlp_out", False),
        ("blocks.0.hook_resid_post", True),
    ]
    return [
        attach_sae(
            tiny_lm,
            build_sae(
                tiny_lm.d_model,
                d_sae=32 + 8 * i,
                hook_name=hook,
                seed=i,
                metadata={"prepend_bos": bos},
            ),
        )
        for i, (hook, bos) in enumerate(specs)
    ]


def test_each_sae_gets_exactly_what_it_gets_alone(three_atts):
    rows = list(activations_per_sae(three_atts, "The cat sat on the mat."))
    for att, row in zip(three_atts, rows, strict=True):
        (alone,) = feature_activations(att, "The cat sat on the mat.", None)
        assert (row.token_ids, row.tokens, row.is_bos) == (
            alone.token_ids,
            alone.tokens,
            alone.is_bos,
        )
        assert row.values.shape == (len(row.token_ids), att.d_sae)
        torch.testing.assert_close(row.values, alone.values, rtol=0, atol=0)


def test_one_forward_pass_per_bos_setting_up_to_the_deepest_hook(three_atts):
    passes = []
    final_norm = []
    lm = three_atts[0].lm
    lm.model.transformer.ln_f.register_forward_hook(lambda *a: final_norm.append(1))
    with intercept(lm, "blocks.0.hook_resid_pre", passes.append):
        list(activations_per_sae(three_atts[:1] + three_atts[2:], "The cat"))
        assert len(passes) == 1
        list(activations_per_sae(three_atts, "The cat"))  # with and without BOS: two
        assert len(passes) == 3
    assert final_norm == []


def test_saes_of_different_models_or_a_bad_text_are_refused_before_any_pass(three_atts, tiny_lm):
    import copy

    from workers.engine.loading import attach_sae

    other = attach_sae(copy.deepcopy(tiny_lm), build_sae(tiny_lm.d_model))
    calls = []
    with intercept(three_atts[0].lm, "blocks.0.hook_resid_pre", calls.append):
        with pytest.raises(ValueError, match="same loaded model"):
            list(activations_per_sae([three_atts[0], other], "The cat"))
        with pytest.raises(ValueError, match="empty"):
            list(activations_per_sae(three_atts, ""))
        with pytest.raises(ValueError, match="no SAEs"):
            list(activations_per_sae([], "The cat"))
    assert calls == []


@pytest.mark.parametrize("chunk", [1, 5, 512])
def test_sparse_features_are_the_non_zeros_of_the_selected_tokens(tiny_att, chunk):
    ids, mask = pad_batch(tiny_att, [tiny_att.lm.encode(t) for t in TEXTS])  # [3, pos]
    select = mask.clone()
    select[:, 0] = False  # e.g. BOS left out
    nz = sparse_features(tiny_att, ids, mask, select, chunk=chunk)
    dense = torch.zeros(*ids.shape, tiny_att.d_sae)
    dense[nz.row, nz.pos, nz.feature] = nz.value
    expected = hooked_features(tiny_att, ids, mask) * select[:, :, None]  # [3, pos, d_sae]
    torch.testing.assert_close(dense, expected.clamp(min=0), rtol=1e-5, atol=1e-6)
    assert bool((nz.value > 0).all())
