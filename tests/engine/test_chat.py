"""Chats: rendered by the model's own chat template, the assistant's positions found, and both
rows of a steered chat generated from their own histories."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.engine.builders import build_sae, save_tiny_chat_model
from workers.engine.chat import chat_prompt
from workers.engine.generation import generate, prepare_request_job
from workers.engine.loading import attach_sae, load_model
from workers.engine.specs import ChatMessage, Intervention, SteerRequest, SteerSpec

CHAT = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi there"),
    ChatMessage("assistant", "Hello!"),
    ChatMessage("user", "How are you?"),
)


@pytest.fixture(scope="module")
def _chat_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_chat")
    save_tiny_chat_model(path)
    return load_model(str(path), device="cpu", dtype="fp32")


@pytest.fixture
def chat_lm(_chat_lm):
    return copy.deepcopy(_chat_lm)


@pytest.fixture
def chat_att(chat_lm):
    return attach_sae(chat_lm, build_sae(chat_lm.d_model, hook_name="blocks.1.hook_resid_post"))


def test_the_chat_is_what_the_tokenizers_own_template_gives_with_the_generation_prompt(chat_lm):
    dicts = [m.to_dict() for m in CHAT]
    expected = chat_lm.tokenizer.apply_chat_template(
        dicts, tokenize=False, add_generation_prompt=True
    )
    got = chat_prompt(chat_lm, CHAT)
    assert chat_lm.decode(got.ids) == expected
    assert expected.endswith("<|im_start|>assistant\n")
    assert got.assistant is None  # only computed when asked


def test_the_assistant_mask_covers_the_assistant_turns_and_the_replys_header(chat_lm):
    got = chat_prompt(chat_lm, CHAT, assistant_mask=True)
    text = "".join(
        f"[{t}]" if a else t for t, a in zip(chat_lm.token_strings(got.ids), got.assistant)
    )
    marked = "".join(
        t for t, a in zip(chat_lm.token_strings(got.ids), got.assistant, strict=True) if a
    )
    assert marked == "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n", text
    assert "Be brief" not in marked and "How are you" not in marked


def test_an_earlier_reply_ending_with_the_end_token_is_not_closed_twice(chat_lm):
    ended = (*CHAT[:2], ChatMessage("assistant", "Hello!<|im_end|>"), CHAT[3])
    assert chat_prompt(chat_lm, ended).ids == chat_prompt(chat_lm, CHAT).ids


def test_a_model_without_a_chat_template_gets_an_error_naming_it(tiny_att):
    assert not tiny_att.lm.tokenizer.chat_template
    with pytest.raises(ValueError, match="has no chat template"):
        generate(tiny_att, CHAT, SteerSpec(max_new_tokens=2))


def test_a_chat_that_does_not_fit_the_context_is_refused(chat_att):
    long = (ChatMessage("user", "word " * 400),)
    with pytest.raises(ValueError, match="context"):
        generate(chat_att, long, SteerSpec(max_new_tokens=2))


def test_zero_strength_reproduces_the_default_reply_and_steering_changes_it(chat_att):
    quiet = generate(chat_att, CHAT, SteerSpec((Intervention(3, 0.0),), seed=1, max_new_tokens=8))
    assert quiet.steered == quiet.default
    loud = generate(chat_att, CHAT, SteerSpec((Intervention(3, 40.0),), seed=1, max_new_tokens=8))
    assert loud.default == quiet.default and loud.steered != loud.default


def test_each_row_continues_its_own_history(chat_att):
    """The steered row of a chat whose histories diverged is generated from the steered
    history: unsteered, it says what a default row with that history says."""
    other = (*CHAT[:2], ChatMessage("assistant", "Go away."), CHAT[3])
    spec = SteerSpec(seed=2, max_new_tokens=8)
    request = SteerRequest("m", "s", "", spec, messages=CHAT, steered_messages=other)
    from workers.engine.scheduler import run_job

    both = run_job(chat_att.lm, prepare_request_job(chat_att, request))
    alone = generate(chat_att, other, spec)
    assert both.steered.tokens == alone.default.tokens
    assert both.default.tokens == generate(chat_att, CHAT, spec).default.tokens


def test_positions_assistant_steers_exactly_the_assistant_positions_of_the_prompt(chat_att):
    """The SAE hook is the last layer's output, so the final norm's input differs between the
    rows exactly where the steering acted."""
    seen: list[torch.Tensor] = []
    norm = chat_att.lm.model.model.norm
    handle = norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        spec = SteerSpec((Intervention(3, 40.0),), positions="assistant", max_new_tokens=2)
        generate(chat_att, CHAT, spec)
    finally:
        handle.remove()
    prefill = seen[0]  # [2 rows, prompt, d]
    changed = ((prefill[0] - prefill[1]).abs().amax(-1) > 1e-4).tolist()
    assert changed == chat_prompt(chat_att.lm, CHAT, assistant_mask=True).assistant
    assert (seen[1][0] - seen[1][1]).abs().amax() > 1e-4  # the reply's positions: steered


def test_positions_assistant_needs_a_chat(chat_att):
    with pytest.raises(ValueError, match="applies to chats"):
        generate(chat_att, "Hello", SteerSpec(positions="assistant", max_new_tokens=2))
