"""Weight-only facts: direct logit effects and decoder neighbours, blockwise vs brute force."""

from __future__ import annotations

import pytest
import torch
import transformers

from tests.engine.builders import build_sae, build_tokenizer
from workers.engine.facts import decoder_neighbours, logit_effects, logit_vectors
from workers.engine.hooks import HookPoint, family_of
from workers.engine.loading import LoadedModel, attach_sae


def brute_force_logits(att) -> torch.Tensor:
    """[d_sae, d_vocab]: the whole matrix at once (fine at test sizes)."""
    lm = att.lm.model
    d = att.sae.W_dec.detach().float()
    d = d - d.mean(-1, keepdim=True)
    return (d * lm.transformer.ln_f.weight) @ lm.lm_head.weight.T


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000])
def test_logit_effects_equal_brute_force_for_any_block_size(tiny_att, block_size):
    top_ids, top_vals, bottom_ids, bottom_vals = logit_effects(tiny_att, k=5, block_size=block_size)
    full = brute_force_logits(tiny_att)
    expected_top, expected_bottom = full.topk(5, dim=-1), full.topk(5, dim=-1, largest=False)
    assert top_ids.shape == (tiny_att.d_sae, 5)
    torch.testing.assert_close(top_vals, expected_top.values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bottom_vals, expected_bottom.values, rtol=1e-5, atol=1e-5)
    assert torch.equal(top_ids, expected_top.indices)
    assert torch.equal(bottom_ids, expected_bottom.indices)


def test_logit_vectors_of_chosen_features_equal_the_brute_force_rows(tiny_att):
    torch.testing.assert_close(
        logit_vectors(tiny_att, [4, 0]), brute_force_logits(tiny_att)[[4, 0]], rtol=1e-5, atol=1e-5
    )


def test_logit_vectors_refuse_an_unknown_feature(tiny_att):
    with pytest.raises(ValueError, match="d_sae=64"):
        logit_vectors(tiny_att, [64])


def test_top_logit_effect_follows_the_final_norm_gamma(tiny_att):
    """Scaling one vocab direction through gamma moves it to the top for a planted feature."""
    model = tiny_att.lm.model
    with torch.no_grad():
        direction = model.lm_head.weight[11] - model.lm_head.weight[11].mean()
        tiny_att.sae.W_dec[0] = direction / model.transformer.ln_f.weight * 10
    top_ids, *_ = logit_effects(tiny_att, k=1)
    assert top_ids[0, 0].item() == 11


def test_attn_z_features_are_mapped_through_the_output_projection(tiny_lm):
    width = tiny_lm.d_model  # n_heads * d_head == d_model for GPT-2
    att = attach_sae(tiny_lm, build_sae(width, hook_name=HookPoint(1, "attn_z").name))
    c_proj = tiny_lm.model.transformer.h[1].attn.c_proj
    d = att.sae.W_dec.float() @ c_proj.weight  # Conv1D: x @ W
    d = d - d.mean(-1, keepdim=True)
    full = (d * tiny_lm.model.transformer.ln_f.weight) @ tiny_lm.model.lm_head.weight.T
    _, top_vals, *_ = logit_effects(att, k=3)
    torch.testing.assert_close(top_vals, full.topk(3, dim=-1).values, rtol=1e-5, atol=1e-5)


def test_gemma_logit_effects_scale_by_one_plus_the_norm_weight():
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = transformers.GemmaForCausalLM(
        transformers.GemmaConfig(
            num_hidden_layers=1,
            hidden_size=16,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            intermediate_size=32,
            vocab_size=len(tokenizer),
            max_position_embeddings=32,
            bos_token_id=tokenizer.bos_token_id,
        )
    ).eval()
    with torch.no_grad():
        model.model.norm.weight.uniform_(-0.5, 0.5)
    lm = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family_of(model),
        name="tiny-gemma",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    att = attach_sae(lm, build_sae(16, d_sae=12, hook_name="blocks.0.hook_resid_post"))
    with torch.no_grad():  # RMSNorm: no centring, gamma = 1 + w
        full = (att.sae.W_dec * (1 + model.model.norm.weight)) @ model.lm_head.weight.T
    _, top_vals, _, bottom_vals = logit_effects(att, k=4, block_size=5)
    torch.testing.assert_close(top_vals, full.topk(4, dim=-1).values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        bottom_vals, full.topk(4, dim=-1, largest=False).values, rtol=1e-5, atol=1e-5
    )


def brute_force_neighbours(w: torch.Tensor, k: int):
    unit = w / w.norm(dim=-1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(float("-inf"))
    return sims.topk(k, dim=-1)


@pytest.mark.parametrize("block_size", [1, 3, 50, 512])
def test_decoder_neighbours_equal_brute_force_for_any_block_size(block_size):
    w = torch.randn(50, 12)
    indices, cosines = decoder_neighbours(w, k=4, block_size=block_size)
    expected = brute_force_neighbours(w, 4)
    torch.testing.assert_close(cosines, expected.values, rtol=1e-5, atol=1e-6)
    assert torch.equal(indices, expected.indices)


def test_a_feature_is_never_its_own_neighbour(tiny_att):
    indices, _ = decoder_neighbours(tiny_att, k=63)
    assert indices.shape == (64, 63)
    assert not (indices == torch.arange(64)[:, None]).any()


def test_duplicated_decoder_rows_are_each_others_nearest_neighbour():
    w = torch.randn(20, 8)
    w[7] = w[3] * 2.5
    indices, cosines = decoder_neighbours(w, k=1)
    assert indices[3, 0] == 7 and indices[7, 0] == 3
    assert cosines[3, 0] == pytest.approx(1.0, abs=1e-5)


def test_k_is_capped_at_d_sae_minus_one_and_zero_rows_do_not_produce_nan():
    w = torch.randn(5, 4)
    w[2] = 0
    indices, cosines = decoder_neighbours(w, k=10)
    assert indices.shape == (5, 4) and torch.isfinite(cosines).all()


def largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made by any op while ``fn`` runs."""
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        fn()
    return max(evt.cpu_memory_usage for evt in prof.events())


def test_neighbour_scratch_memory_is_bounded_by_the_block_size():
    """The largest tensor allocated is one [block, d_sae] similarity block, never d_sae^2."""
    d_sae, block = 3000, 100
    w = torch.randn(d_sae, 16)
    biggest = largest_allocation(lambda: decoder_neighbours(w, k=5, block_size=block))
    assert biggest <= block * d_sae * 4 * 1.01  # one fp32 block
    # the measurement itself sees a full matrix when one is made
    assert (
        largest_allocation(lambda: decoder_neighbours(w, k=5, block_size=d_sae))
        >= d_sae * d_sae * 4
    )


def test_logit_scratch_memory_is_bounded_by_the_block_size(tiny_att):
    block = 8
    vocab = tiny_att.lm.vocab_size
    biggest = largest_allocation(lambda: logit_effects(tiny_att, k=3, block_size=block))
    # a [block, vocab] logits block, or the (float32) unembedding itself, whichever is larger
    assert biggest <= max(block * vocab, vocab * tiny_att.lm.d_model) * 4 * 1.01


def test_logit_effects_can_be_limited_to_some_tokens(tiny_att):
    import torch

    from workers.engine.facts import logit_effects

    d_vocab = tiny_att.lm.model.get_output_embeddings().weight.shape[0]
    allowed = torch.zeros(d_vocab, dtype=torch.bool)
    allowed[10:20] = True
    top_ids, _, bottom_ids, _ = logit_effects(tiny_att, 5, vocab_mask=allowed)
    assert bool(((top_ids >= 10) & (top_ids < 20)).all())
    assert bool(((bottom_ids >= 10) & (bottom_ids < 20)).all())


def test_fact_keys_change_with_what_the_facts_are_computed_from(tiny_att):
    from workers.engine.facts import decoder_neighbours_key, logit_effects_key

    mask = torch.zeros(tiny_att.lm.vocab_size, dtype=torch.bool)
    mask[:5] = True
    logits, neighbours = logit_effects_key(tiny_att, 10, mask), decoder_neighbours_key(tiny_att, 10)
    assert logit_effects_key(tiny_att, 10, mask) == logits  # deterministic
    assert logit_effects_key(tiny_att, 5, mask) != logits
    other = mask.clone()
    other[7] = True
    assert logit_effects_key(tiny_att, 10, other) != logits
    assert logit_effects_key(tiny_att, 10) != logits
    assert decoder_neighbours_key(tiny_att, 10) == neighbours
    with torch.no_grad():
        tiny_att.decoder_directions[0, 0] += 1.0
    try:
        assert decoder_neighbours_key(tiny_att, 10) != neighbours
        assert logit_effects_key(tiny_att, 10, mask) != logits
    finally:
        with torch.no_grad():
            tiny_att.decoder_directions[0, 0] -= 1.0
