"""Loading models and SAEs, attaching an SAE, and encoding exactly as sae-lens does.

Encoding tolerance: our ``AttachedSAE.encode`` on our hooked activations equals
``sae_lens.SAE.encode`` on TransformerLens's activations within atol 1e-5 / rtol 1e-4 (fp32;
the only differences are float summation order in the two forward passes).
"""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

from tests.engine.builders import SAE_CONFIGS, build_sae
from tests.engine.test_hooks import hooked_transformer_from
from workers.engine.constants import DEMO_MODEL_DIR, DEMO_SAE_DIR
from workers.engine.hooks import run_to_hook
from workers.engine.loading import attach_sae, load_model, load_sae

TEXTS = ["The cat sat on the mat.", "A quick brown dog ran far away."]


def batch(lm):
    rows = [lm.encode(t) for t in TEXTS]
    n = min(len(r) for r in rows)
    return torch.stack([r[:n] for r in rows])  # [2, pos]


# --- models ------------------------------------------------------------------------------


def test_a_local_model_loads_in_eval_mode_on_cpu_in_fp32(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device="cpu")
    assert lm.family.name == "gpt2" and lm.dtype == torch.float32
    assert not lm.model.training and lm.device.type == "cpu"
    assert lm.n_layers == 2 and lm.d_model == 32 and lm.n_ctx == 64


def test_a_dtype_name_sets_the_weight_dtype(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    assert next(lm.model.parameters()).dtype == torch.bfloat16 and lm.dtype == torch.bfloat16


def test_an_unknown_dtype_lists_the_accepted_names(tiny_model_dir):
    with pytest.raises(ValueError, match=r"unknown dtype 'fp8'.*bfloat16"):
        load_model(str(tiny_model_dir), dtype="fp8")


def test_an_unsupported_architecture_fails_at_load_naming_supported_ones(tmp_path):
    cfg = transformers.OPTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        vocab_size=64,
        word_embed_proj_dim=16,
        max_position_embeddings=32,
    )
    transformers.OPTForCausalLM(cfg).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"unsupported architecture 'opt'.*gemma2.*gpt_neox"):
        load_model(str(tmp_path))


def test_encode_prepends_bos_when_asked(tiny_lm):
    with_bos, without = tiny_lm.encode("The cat"), tiny_lm.encode("The cat", prepend_bos=False)
    assert with_bos[0].item() == tiny_lm.bos_token_id
    assert with_bos[1:].tolist() == without.tolist()


def test_encode_refuses_empty_text(tiny_lm):
    with pytest.raises(ValueError, match="empty"):
        tiny_lm.encode("")


def test_encode_refuses_text_longer_than_the_context_naming_the_limit(tiny_lm):
    with pytest.raises(ValueError, match=r"context is 64 tokens"):
        tiny_lm.encode("the cat " * 100)


def test_token_strings_are_readable_and_decode_round_trips(tiny_lm):
    ids = tiny_lm.encode("The cat sat", prepend_bos=False)
    assert "".join(tiny_lm.token_strings(ids)) == "The cat sat"
    assert tiny_lm.decode(ids) == "The cat sat"


def test_the_demo_model_loads_when_present():
    if not (DEMO_MODEL_DIR / "model.safetensors").is_file():
        with pytest.raises(FileNotFoundError, match="demo model is missing"):
            load_model("demo")
    else:
        assert load_model("demo", device="cpu").family.name == "gpt2"


# --- SAEs --------------------------------------------------------------------------------


def test_a_local_saelens_folder_loads_with_its_weights(tmp_path, tiny_sae):
    tiny_sae.save_model(tmp_path)
    loaded = load_sae(str(tmp_path), device="cpu")
    torch.testing.assert_close(loaded.W_dec, tiny_sae.W_dec, rtol=0, atol=0)
    assert loaded.cfg.metadata.hook_name == "blocks.1.hook_resid_post"


def test_an_sae_spec_of_no_known_form_is_refused():
    with pytest.raises(ValueError, match="neither 'demo'"):
        load_sae("/no/such/folder")


def test_the_demo_sae_loads_when_present():
    if not (DEMO_SAE_DIR / "sae_weights.safetensors").is_file():
        with pytest.raises(FileNotFoundError, match="demo SAE is missing"):
            load_sae("demo")
    else:
        assert load_sae("demo", device="cpu").cfg.d_sae > 0


# --- attach ------------------------------------------------------------------------------


def test_attach_refuses_a_d_in_mismatch_naming_both_widths(tiny_lm):
    with pytest.raises(
        ValueError,
        match=r"d_in=48 does not match the width 32 of "
        r"blocks\.1\.hook_resid_post",
    ):
        attach_sae(tiny_lm, build_sae(48))


def test_attach_refuses_a_hook_the_model_lacks(tiny_lm):
    with pytest.raises(ValueError, match=r"cannot attach.*layer 5 out of range"):
        attach_sae(tiny_lm, build_sae(32, hook_name="blocks.5.hook_resid_post"))


def test_attach_refuses_an_unsupported_hook_name(tiny_lm):
    with pytest.raises(ValueError, match="unsupported hook name"):
        attach_sae(tiny_lm, build_sae(32, hook_name="blocks.1.hook_resid_mid"))


def test_attach_moves_the_sae_to_the_model_dtype(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    att = attach_sae(lm, build_sae(32))
    assert att.sae.W_dec.dtype == torch.bfloat16
    assert att.encode(run_to_hook(lm, batch(lm), None, att.hook_name)).dtype == torch.bfloat16


def test_an_unknown_feature_index_names_d_sae(tiny_att):
    with pytest.raises(ValueError, match="d_sae=64"):
        tiny_att.check_feature(64)


def test_decoder_directions_are_the_w_dec_rows(tiny_att):
    assert tiny_att.decoder_directions.shape == (64, 32)
    f = torch.zeros(64)
    f[3] = 2.0
    torch.testing.assert_close(tiny_att.decode(f), 2.0 * tiny_att.sae.W_dec[3] + tiny_att.sae.b_dec)


def test_preprocessing_is_read_from_the_sae_config(tiny_lm):
    plain = attach_sae(tiny_lm, build_sae(32)).preprocessing
    centred = attach_sae(
        tiny_lm,
        build_sae(32, metadata={"model_from_pretrained_kwargs": {"center_writing_weights": True}}),
    ).preprocessing
    assert (plain.center_residual, centred.center_residual) == (False, True)
    assert plain.prepend_bos and plain.normalize_activations == "none"


# --- our encoding equals sae-lens's on TransformerLens activations -------------------------


@pytest.fixture(scope="module")
def tl_model(_tiny_lm_cached):
    return hooked_transformer_from(_tiny_lm_cached.model)


@pytest.mark.parametrize("architecture", sorted(SAE_CONFIGS))
@pytest.mark.parametrize("hook", ["blocks.1.hook_resid_post", "blocks.0.hook_mlp_out"])
def test_encoding_equals_sae_lens_on_transformer_lens_activations(
    tiny_lm, tl_model, architecture, hook
):
    extra = {"k": 8} if architecture == "topk" else {}
    sae = build_sae(32, hook_name=hook, architecture=architecture, **extra)
    reference_sae = copy.deepcopy(sae)
    ids = batch(tiny_lm)
    _, cache = tl_model.run_with_cache(ids, names_filter=[hook])
    expected = reference_sae.encode(cache[hook])  # [b, pos, d_sae]
    att = attach_sae(tiny_lm, sae)
    ours = att.encode(run_to_hook(tiny_lm, ids, None, hook))
    assert (expected > 0).any()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_hook_z_sae_encoding_equals_sae_lens_with_its_own_reshaping(tiny_lm, tl_model):
    hook = "blocks.1.attn.hook_z"
    sae = build_sae(32, hook_name=hook, reshape_activations="hook_z")
    reference_sae = copy.deepcopy(sae)
    ids = batch(tiny_lm)
    _, cache = tl_model.run_with_cache(ids, names_filter=[hook])
    expected = reference_sae.encode(cache[hook])  # sae-lens flattens [.., heads, d_head]
    ours = attach_sae(tiny_lm, sae).encode(run_to_hook(tiny_lm, ids, None, hook))
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_layer_norm_activation_normalisation_is_applied_by_sae_lens(tiny_lm, tl_model):
    hook = "blocks.1.hook_resid_post"
    sae = build_sae(32, normalize_activations="layer_norm")
    reference_sae = copy.deepcopy(sae)
    ids = batch(tiny_lm)
    _, cache = tl_model.run_with_cache(ids, names_filter=[hook])
    ours = attach_sae(tiny_lm, sae).encode(run_to_hook(tiny_lm, ids, None, hook))
    torch.testing.assert_close(ours, reference_sae.encode(cache[hook]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "hook",
    [
        "blocks.0.hook_resid_pre",
        "blocks.1.hook_resid_post",
        "blocks.1.hook_attn_out",
        "blocks.0.hook_mlp_out",
    ],
)
def test_sae_trained_on_centred_weights_sees_the_centred_activations(tiny_lm, hook):
    tl_centred = hooked_transformer_from(tiny_lm.model, center_writing_weights=True)
    sae = build_sae(
        32,
        hook_name=hook,
        metadata={"model_from_pretrained_kwargs": {"center_writing_weights": True}},
    )
    reference_sae = copy.deepcopy(sae)
    ids = batch(tiny_lm)
    _, cache = tl_centred.run_with_cache(ids, names_filter=[hook])
    ours = attach_sae(tiny_lm, sae).encode(run_to_hook(tiny_lm, ids, None, hook))
    torch.testing.assert_close(ours, reference_sae.encode(cache[hook]), rtol=1e-4, atol=1e-5)


def test_demo_sae_encoding_equals_sae_lens_on_transformer_lens_activations(demo_lm, demo_sae):
    reference_sae = copy.deepcopy(demo_sae)
    att = attach_sae(demo_lm, demo_sae)
    ids = demo_lm.encode("The jury said the city had no evidence.")[None]
    _, cache = hooked_transformer_from(demo_lm.model).run_with_cache(
        ids, names_filter=[att.hook_name]
    )
    expected = reference_sae.encode(cache[att.hook_name])  # [1, pos, d_sae]
    ours = att.encode(run_to_hook(demo_lm, ids, None, att.hook_name))
    assert (expected > 0).any()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
