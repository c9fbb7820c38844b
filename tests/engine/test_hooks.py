"""Hook names, the intercept primitive, early stopping, and agreement with TransformerLens."""

from __future__ import annotations

import threading

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights

from workers.engine.hooks import (
    HOOK_KINDS,
    HookPoint,
    StopForward,
    active_hook_count,
    family_of,
    intercept,
    logits_from_hidden,
    parse_hook_name,
    run_to_hook,
    run_to_hooks,
    run_to_unembed,
)

ALL_HOOKS = [HookPoint(layer, kind).name for layer in (0, 1) for kind in HOOK_KINDS]


def hooked_transformer_from(hf_model, **processing) -> HookedTransformer:
    """A TransformerLens model holding the same GPT-2 weights (no download).

    Processing defaults match ``from_pretrained_no_processing``; pass e.g.
    ``center_writing_weights=True`` to get what SAEs trained on processed weights saw.
    """
    c = hf_model.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_ctx=c.n_positions,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd,
        d_vocab=c.vocab_size,
        act_fn=c.activation_function,
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel",
        device="cpu",
        default_prepend_bos=False,
    )
    model = HookedTransformer(cfg)
    settings = {
        "fold_ln": False,
        "center_writing_weights": False,
        "center_unembed": False,
        "fold_value_biases": False,
        **processing,
    }
    model.load_and_process_state_dict(convert_gpt2_weights(hf_model, cfg), **settings)
    return model.eval()


def tl_activation(cache, name: str) -> torch.Tensor:
    act = cache[name]
    return act.flatten(-2) if name.endswith("hook_z") else act  # [b, pos, h, dh] -> [b, pos, h*dh]


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_HOOKS)
def test_canonical_names_round_trip(name):
    assert parse_hook_name(name).name == name


@pytest.mark.parametrize(
    ("short", "canonical"),
    [
        ("resid_pre.3", "blocks.3.hook_resid_pre"),
        ("resid_post.0", "blocks.0.hook_resid_post"),
        ("mlp_out.2", "blocks.2.hook_mlp_out"),
        ("attn_out.1", "blocks.1.hook_attn_out"),
        ("z.4", "blocks.4.attn.hook_z"),
    ],
)
def test_shorthand_names_parse_to_canonical(short, canonical):
    assert parse_hook_name(short).name == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "blocks.1.hook_resid_mid",
        "blocks.x.hook_resid_post",
        "resid_post",
        "blocks.1.hook_q",
        "foo.3",
    ],
)
def test_unsupported_hook_name_error_lists_supported_forms(bad):
    with pytest.raises(ValueError, match=r"supported: blocks\.\{L\}\.hook_resid_pre"):
        parse_hook_name(bad)


def test_hook_in_a_layer_the_model_lacks_names_the_layer_count(tiny_lm):
    with (
        pytest.raises(ValueError, match=r"layer 7 out of range.*2 layers"),
        intercept(tiny_lm, "blocks.7.hook_resid_post", lambda x: None),
    ):
        pass


def test_unsupported_architecture_error_names_supported_model_types():
    import transformers

    model = transformers.BertForMaskedLM(
        transformers.BertConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            vocab_size=50,
        )
    )
    with pytest.raises(ValueError, match=r"unsupported architecture 'bert'.*gpt2.*llama"):
        family_of(model)


# --- intercept ---------------------------------------------------------------------------


def test_intercept_removes_its_hook_after_an_exception_in_the_block(tiny_lm):
    ids = tiny_lm.encode("The cat")[None]
    assert active_hook_count(tiny_lm) == 0
    with (
        pytest.raises(RuntimeError, match="boom"),
        intercept(tiny_lm, "blocks.0.hook_resid_post", lambda x: None),
    ):
        assert active_hook_count(tiny_lm) == 1
        tiny_lm.model(ids)
        raise RuntimeError("boom")
    assert active_hook_count(tiny_lm) == 0


def test_intercept_removes_its_hook_after_an_exception_inside_the_hook(tiny_lm):
    def failing(x):
        raise KeyError("inside")

    with pytest.raises(KeyError), intercept(tiny_lm, "blocks.0.attn.hook_z", failing):
        tiny_lm.model(tiny_lm.encode("The cat")[None])
    assert active_hook_count(tiny_lm) == 0


@pytest.mark.parametrize("name", ALL_HOOKS)
def test_replacing_the_activation_changes_the_logits(tiny_lm, name):
    ids = tiny_lm.encode("The cat sat on the mat")[None]
    with torch.no_grad():
        clean = tiny_lm.model(ids).logits
        with intercept(tiny_lm, name, lambda x: x + 1.0):
            steered = tiny_lm.model(ids).logits
        again = tiny_lm.model(ids).logits
    assert not torch.allclose(clean, steered)
    torch.testing.assert_close(clean, again)  # nothing left behind


def test_returning_none_leaves_the_forward_pass_unchanged(tiny_lm):
    ids = tiny_lm.encode("The cat sat")[None]
    with torch.no_grad():
        clean = tiny_lm.model(ids).logits
        with intercept(tiny_lm, "blocks.1.hook_mlp_out", lambda x: None):
            same = tiny_lm.model(ids).logits
    torch.testing.assert_close(clean, same, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"])
def test_intercept_leaves_forward_passes_on_other_threads_alone(tiny_lm, name):
    # A worker may index on one thread while a steering loop decodes on another.
    ids = tiny_lm.encode("The cat sat")[None]
    seen: list[str] = []
    other: dict[str, torch.Tensor] = {}

    def forward_elsewhere() -> None:
        with torch.no_grad():
            other["logits"] = tiny_lm.model(ids).logits

    with torch.no_grad():
        clean = tiny_lm.model(ids).logits
        with intercept(tiny_lm, name, lambda x: seen.append("here") or x + 1.0):
            thread = threading.Thread(target=forward_elsewhere)
            thread.start()
            thread.join()
            here = tiny_lm.model(ids).logits
    torch.testing.assert_close(other["logits"], clean, rtol=0, atol=0)
    assert seen == ["here"]
    assert not torch.allclose(here, clean)


def test_a_replacement_of_the_wrong_shape_is_refused(tiny_lm):
    with (
        pytest.raises(ValueError, match="replacement has shape"),
        intercept(tiny_lm, "blocks.0.hook_resid_pre", lambda x: x[..., :3]),
    ):
        tiny_lm.model(tiny_lm.encode("The cat")[None])


# --- early stopping ----------------------------------------------------------------------


def test_run_to_hook_never_runs_later_layers(tiny_lm):
    later_calls = []
    ids = tiny_lm.encode("The cat sat")[None]
    with intercept(tiny_lm, "blocks.1.hook_resid_pre", lambda x: later_calls.append(1)):
        acts = run_to_hook(tiny_lm, ids, None, "blocks.0.hook_mlp_out")
    assert acts.shape == (1, ids.shape[1], tiny_lm.d_model)
    assert later_calls == []
    assert active_hook_count(tiny_lm) == 0


def test_run_to_hook_matches_a_full_forward(tiny_lm):
    ids = tiny_lm.encode("The quick brown fox")[None]
    seen = []
    with torch.no_grad(), intercept(tiny_lm, "blocks.1.hook_resid_post", seen.append):
        tiny_lm.model(ids)
    torch.testing.assert_close(
        run_to_hook(tiny_lm, ids, None, "blocks.1.hook_resid_post"), seen[0], rtol=0, atol=0
    )


def test_run_to_hooks_reads_each_hook_as_run_to_hook_does(tiny_lm):
    ids = tiny_lm.encode("The quick brown fox")[None]
    wanted = ["blocks.1.hook_mlp_out", "blocks.0.hook_resid_post", "blocks.0.attn.hook_z"]
    got = run_to_hooks(tiny_lm, ids, None, wanted)
    assert list(got) == wanted
    for name in wanted:
        torch.testing.assert_close(got[name], run_to_hook(tiny_lm, ids, None, name), rtol=0, atol=0)
    assert active_hook_count(tiny_lm) == 0


def test_run_to_hooks_stops_after_the_deepest_hook_in_one_pass(tiny_lm):
    passes, later = [], []
    ids = tiny_lm.encode("The cat sat")[None]
    with (
        intercept(tiny_lm, "blocks.0.hook_resid_pre", passes.append),
        intercept(tiny_lm, "blocks.1.hook_mlp_out", later.append),
    ):
        run_to_hooks(tiny_lm, ids, None, ["blocks.1.hook_resid_pre", "blocks.0.hook_mlp_out"])
    assert (len(passes), later) == (1, [])


def test_run_to_hooks_refuses_an_unknown_hook_and_leaves_no_hook_behind(tiny_lm):
    ids = tiny_lm.encode("The cat")[None]
    with pytest.raises(ValueError, match="blocks.7"):
        run_to_hooks(tiny_lm, ids, None, ["blocks.0.hook_resid_post", "blocks.7.hook_resid_post"])
    with pytest.raises(ValueError, match="no hooks"):
        run_to_hooks(tiny_lm, ids, None, [])
    assert active_hook_count(tiny_lm) == 0


def test_stop_forward_is_an_exception_callers_can_catch():
    assert issubclass(StopForward, Exception)


# --- agreement with TransformerLens -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tl_pair(_tiny_lm_cached):
    return _tiny_lm_cached, hooked_transformer_from(_tiny_lm_cached.model)


@pytest.mark.parametrize("name", ALL_HOOKS)
def test_hooked_activations_equal_transformer_lens_on_tiny_gpt2(tiny_tl_pair, name):
    lm, tl = tiny_tl_pair
    ids = torch.stack([lm.encode("The cat sat on the mat."), lm.encode("A quick brown dog ran.")])
    _, cache = tl.run_with_cache(ids, names_filter=[name])
    ours = run_to_hook(lm, ids, None, name)
    torch.testing.assert_close(ours, tl_activation(cache, name), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def demo_tl_pair(_demo_lm_cached):
    return _demo_lm_cached, hooked_transformer_from(_demo_lm_cached.model)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("kind", HOOK_KINDS)
def test_hooked_activations_equal_transformer_lens_on_the_demo_model(demo_tl_pair, layer, kind):
    lm, tl = demo_tl_pair
    name = HookPoint(min(layer, lm.n_layers - 1), kind).name
    rows = [
        lm.encode("The jury said the city had no evidence."),
        lm.encode("She walked home slowly in the rain, and then"),
    ]
    n = min(len(r) for r in rows)
    ids = torch.stack([r[:n] for r in rows])  # [2, pos]
    _, cache = tl.run_with_cache(ids, names_filter=[name])
    ours = run_to_hook(lm, ids, None, name)
    torch.testing.assert_close(ours, tl_activation(cache, name), rtol=1e-4, atol=1e-4)


def test_run_to_unembed_then_logits_from_hidden_gives_the_models_logits(tiny_lm):
    ids = torch.randint(0, tiny_lm.vocab_size, (2, 7))
    hidden = run_to_unembed(tiny_lm, ids, None)  # [2, 7, d_model]
    assert hidden.shape == (2, 7, tiny_lm.d_model)
    with torch.no_grad():
        want = tiny_lm.model(input_ids=ids).logits
        torch.testing.assert_close(logits_from_hidden(tiny_lm, hidden), want)
    assert active_hook_count(tiny_lm) == 0


def test_logits_from_hidden_applies_a_final_soft_cap(tiny_lm):
    tiny_lm.model.config.final_logit_softcapping = 2.0
    hidden = torch.randn(3, tiny_lm.d_model) * 10
    with torch.no_grad():
        got = logits_from_hidden(tiny_lm, hidden)
        torch.testing.assert_close(got, torch.tanh(tiny_lm.model.lm_head(hidden) / 2.0) * 2.0)
    assert got.abs().max() <= 2.0
