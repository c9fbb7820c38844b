"""Every architecture family's hook table, exercised on a tiny random model from its config.

Beyond "the module exists", the tests check the semantics: resid_post(L) is resid_pre(L+1);
resid_post = resid_pre + attn_out + mlp_out (the sub-layer outputs are the additive
contributions, also for Gemma-2's post-norms and Pythia's parallel block); and attn_z fed
through the output projection gives attn_out.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from workers.engine.hooks import (
    HOOK_KINDS,
    HookPoint,
    active_hook_count,
    family_of,
    hook_width,
    intercept,
    resolve,
    run_to_hook,
)

SMALL = {
    "num_hidden_layers": 3,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "vocab_size": 96,
    "max_position_embeddings": 64,
}
GQA = {"num_key_value_heads": 2}

CONFIGS = {
    "gpt2": lambda: transformers.GPT2Config(
        n_layer=3,
        n_embd=32,
        n_head=4,
        vocab_size=96,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    ),
    "gpt_neox": lambda: transformers.GPTNeoXConfig(**SMALL),
    "llama": lambda: transformers.LlamaConfig(**SMALL, **GQA),
    "mistral": lambda: transformers.MistralConfig(**SMALL, **GQA),
    "qwen2": lambda: transformers.Qwen2Config(**SMALL, **GQA),
    "qwen3": lambda: transformers.Qwen3Config(**SMALL, **GQA, head_dim=8),
    # head_dim 16 != hidden/heads: attn_z width must come from the config, not d_model.
    "gemma": lambda: transformers.GemmaConfig(**SMALL, **GQA, head_dim=16),
    "gemma2": lambda: transformers.Gemma2Config(**SMALL, **GQA, head_dim=16),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request):
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(CONFIGS[request.param]()).eval()


@pytest.fixture
def ids():
    return torch.randint(0, 96, (2, 7))


def capture_all(model, ids, layer):
    acts = {}
    names = [HookPoint(layer, kind).name for kind in HOOK_KINDS]
    with torch.no_grad():
        for kind, name in zip(HOOK_KINDS, names, strict=True):
            with intercept(model, name, lambda x, k=kind: acts.__setitem__(k, x.clone())):
                model(ids)
    return acts


def test_every_hook_kind_resolves_in_every_layer(model):
    n_layers = model.config.num_hidden_layers
    for layer in range(n_layers):
        for kind in HOOK_KINDS:
            _module, where, point = resolve(model, HookPoint(layer, kind))
            assert where in ("input", "output") and point.layer == layer


def test_intercept_sees_batch_pos_width(model, ids):
    acts = capture_all(model, ids, layer=1)
    for kind, x in acts.items():
        assert x.shape == (2, 7, hook_width(model, HookPoint(1, kind))), kind


def test_residual_post_is_the_next_blocks_residual_pre(model, ids):
    first, second = capture_all(model, ids, 0), capture_all(model, ids, 1)
    torch.testing.assert_close(first["resid_post"], second["resid_pre"], rtol=0, atol=0)


def test_attn_out_and_mlp_out_are_the_additive_contributions(model, ids):
    a = capture_all(model, ids, 1)
    torch.testing.assert_close(
        a["resid_pre"] + a["attn_out"] + a["mlp_out"], a["resid_post"], rtol=1e-4, atol=1e-5
    )


def test_attn_z_through_the_output_projection_gives_attn_out(model, ids):
    a = capture_all(model, ids, 2)
    out_proj, _, _ = resolve(model, "blocks.2.attn.hook_z")
    with torch.no_grad():
        projected = out_proj(a["attn_z"])  # [b, pos, d_model]
        if family_of(model).name == "gemma2":  # then Gemma-2's post-attention norm
            projected = model.model.layers[2].post_attention_layernorm(projected)
    torch.testing.assert_close(projected, a["attn_out"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", HOOK_KINDS)
def test_replacing_the_activation_at_the_last_layer_changes_the_logits(model, ids, kind):
    name = HookPoint(model.config.num_hidden_layers - 1, kind).name
    with torch.no_grad():
        clean = model(ids).logits
        with intercept(model, name, lambda x: x * 0.5 + 0.3):
            steered = model(ids).logits
    assert not torch.allclose(clean, steered)
    assert active_hook_count(model) == 0


def test_run_to_hook_stops_before_later_blocks(model, ids):
    calls = []
    with intercept(model, "blocks.2.hook_resid_pre", lambda x: calls.append(1)):
        acts = run_to_hook(model, ids, None, "blocks.1.attn.hook_z")
    assert calls == [] and acts.shape[:2] == (2, 7)


def test_a_layer_beyond_the_model_is_refused(model):
    with pytest.raises(ValueError, match="layer 3 out of range"):
        resolve(model, "blocks.3.hook_resid_post")
