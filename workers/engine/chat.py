"""Chats as token ids: a conversation rendered by the model's own chat template.

`chat_prompt` applies the tokenizer's `apply_chat_template` with the generation prompt (the
header of the assistant's reply), then tokenizes the text without adding special tokens (the
template writes BOS itself where the model wants it). It also says which positions belong to
the assistant's turns, for steering at positions ``assistant`` (specs.py): each assistant
message's span is found by rendering the conversation up to and after it, so it works with any
template that renders a conversation's prefix as a prefix of the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.engine.specs import ChatMessage


@dataclass(frozen=True)
class ChatPrompt:
    ids: list[int]
    # per position of `ids`: an assistant turn (earlier replies, the reply's header); None
    # when not asked for
    assistant: list[bool] | None = None


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _dicts(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages for the template. An earlier reply that ended with the end-of-sequence token
    (as generated rows do) loses it: the template closes each turn itself."""
    eos = getattr(tokenizer, "eos_token", None) or None
    out = []
    for m in messages:
        content = m.content
        if m.role == "assistant" and eos and content.endswith(eos):
            content = content[: -len(eos)]
        out.append({"role": m.role, "content": content})
    return out


def chat_prompt(
    lm: Any, messages: Sequence[ChatMessage], *, assistant_mask: bool = False
) -> ChatPrompt:
    """The token ids of `messages` with the generation prompt and, with `assistant_mask`,
    which positions are the assistant's.

    Raises ValueError naming the missing template when the tokenizer has none, and when the
    rendered chat does not fit the model's context.
    """
    tok = lm.tokenizer
    if not has_chat_template(tok):
        raise ValueError(
            f"model {getattr(lm, 'name', '') or '(unnamed)'} has no chat template (its "
            "tokenizer's chat_template is unset): steer it with a plain prompt"
        )
    msgs = _dicts(tok, messages)
    ids = _render(tok, msgs, generation_prompt=True)
    if len(ids) > lm.n_ctx:
        raise ValueError(
            f"the chat is {len(ids)} tokens long; the model's context is {lm.n_ctx} tokens"
        )
    return ChatPrompt(
        ids=ids, assistant=_assistant_mask(tok, msgs, ids) if assistant_mask else None
    )


def _assistant_mask(tok: Any, msgs: list[dict[str, str]], ids: list[int]) -> list[bool]:
    """Assistant positions, from the renders of each prefix of the chat. A template that does
    not render a prefix as a prefix of the whole gets only the last position (the one the reply
    is predicted from) before generation."""
    mask = [False] * len(ids)
    start = 0
    for i, m in enumerate(msgs + [None]):
        part = (
            _render(tok, msgs[: i + 1], generation_prompt=False)
            if m is not None
            else ids  # the generation prompt: the reply's header
        )
        end = len(part)
        if end < start or part != ids[:end]:
            return [False] * (len(ids) - 1) + [True]
        if m is None or m["role"] == "assistant":
            mask[start:end] = [True] * (end - start)
        start = end
    return mask
