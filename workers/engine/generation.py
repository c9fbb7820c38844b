"""Steered generation: the default and the steered continuation of one prompt, side by side.

Both rows decode as two rows of ONE batch through `batching.DecodeBatch` (the engine's only
decoding loop), with a KV cache, each row with its own `torch.Generator` seeded with the
spec's seed. The unsteered row carries no plan at all, and zero-strength add/logit
interventions compile to nothing, so seed + zero strength reproduces the default text exactly.

A row stops after `max_new_tokens` or after emitting the tokenizer's EOS token (included in
`tokens`). `text` is the decoded continuation only (the prompt is not repeated).

A chat (a sequence of `ChatMessage`) is rendered by the model's chat template (chat.py); the
steered row may continue a history of its own (`steered_prompt`: the same turns with its own
earlier replies), so the two rows of a chat diverge as a conversation goes on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.engine.batching import Job, RowRequest
from workers.engine.chat import ChatPrompt, chat_prompt
from workers.engine.interventions import FeatureStats, compile_plan
from workers.engine.scheduler import BatchScheduler, JobHandle, run_job
from workers.engine.specs import ChatMessage, SteerRequest, SteerSpec

Prompt = str | Sequence[ChatMessage]

ROWS = ("default", "steered")


@dataclass(frozen=True)
class Row:
    """A continuation. `probs[i]` is the model's probability of `tokens[i]` and
    `alternatives[i]` its likeliest tokens then, as (id, probability), likeliest first
    (sampling.token_probabilities); neither takes part in equality: they are floats from a
    batched forward pass, whose last digits depend on the batch."""

    text: str
    tokens: list[int]
    probs: list[float] = field(default_factory=list, compare=False)
    alternatives: list[list[tuple[int, float]]] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tokens": list(self.tokens)}


@dataclass(frozen=True)
class GenerationResult:
    """`seed` is the seed actually used (the spec's, or a fresh one when it had none)."""

    default: Row
    steered: Row
    prompt_tokens: list[int]
    seed: int
    cancelled: bool = False
    spec: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default.to_dict(), "steered": self.steered.to_dict()}


def _prompt_ids(att: Any, prompt: Prompt, positions: str) -> ChatPrompt:
    """Token ids of a prompt (BOS as the SAE was trained) or of a chat (its template decides)."""
    lm = att.lm
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("prompt is empty")
        if positions == "assistant":
            raise ValueError("positions 'assistant' applies to chats (messages), not a prompt")
        return ChatPrompt(ids=lm.encode(prompt, prepend_bos=att.preprocessing.prepend_bos).tolist())
    if not prompt:
        raise ValueError("the chat has no messages")
    return chat_prompt(lm, prompt, assistant_mask=positions == "assistant")


def prepare_job(
    att: Any,
    prompt: Prompt,
    spec: SteerSpec,
    *,
    steered_prompt: Sequence[ChatMessage] | None = None,
    on_token: Callable[[str, int, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    stats: Mapping[int, FeatureStats] | None = None,
    client: str | None = None,
) -> Job:
    """Validate everything and build the two-row job; no model work happens here.

    `prompt` is a text or a chat (ChatMessage sequence); `steered_prompt` the steered row's own
    chat when its history differs from the default row's.
    `on_token(row, token_id, text)` is called once per generated token per row ("default" or
    "steered"); `text` is the newly final text (may be "" while a character is incomplete).
    `cancel()` is polled before every decode step; when it returns True generation stops and
    the result has `cancelled=True` with the tokens so far. `stats` feed mean/resample
    ablation. `client` names who asked (a BatchScheduler admits clients round-robin).

    Raises ValueError for an empty prompt, a model without a chat template for a chat, a
    prompt + max_new_tokens beyond the model's context, an unknown feature index (naming
    d_sae) or missing ablation stats; TypeError when `spec` is not a SteerSpec (build one
    with `SteerSpec.from_dict`).
    """
    if not isinstance(spec, SteerSpec):
        raise TypeError(f"spec must be a SteerSpec, got {type(spec).__name__}")
    for iv in spec.interventions:
        if iv.mode != "vector":  # a vector's `feature` is its own id (specs.py)
            att.check_feature(iv.feature)
    lm = att.lm
    default = _prompt_ids(att, prompt, spec.positions)
    steered = (
        default if steered_prompt is None else _prompt_ids(att, steered_prompt, spec.positions)
    )
    ids = default.ids
    longest = max(len(default.ids), len(steered.ids))
    if longest + spec.max_new_tokens > lm.n_ctx:
        raise ValueError(
            f"prompt ({longest} tokens) + max_new_tokens ({spec.max_new_tokens}) exceeds the "
            f"model's context of {lm.n_ctx} tokens"
        )
    seed = spec.seed if spec.seed is not None else random.randrange(2**31)
    plan = compile_plan(att, spec.interventions, spec.positions, stats=stats, seed=seed)
    if steered.assistant is not None:
        plan.prompt_mask = torch.tensor(steered.assistant, dtype=torch.bool)
    rows = [
        RowRequest(
            label=label,
            prompt_ids=steered.ids if label == "steered" else ids,
            plan=None if label == "default" or plan.is_noop else plan,
            temperature=spec.temperature,
            top_p=spec.top_p,
            seed=seed,
            max_new_tokens=spec.max_new_tokens,
        )
        for label in ROWS
    ]

    def finish(outputs: dict[str, tuple], cancelled: bool) -> GenerationResult:
        # the full decode (the streamed deltas may stop short of it when cancelled)
        got = {
            k: Row(text=lm.decode(v[0]), tokens=v[0], probs=v[2][0], alternatives=v[2][1])
            for k, v in outputs.items()
        }
        empty = Row(text="", tokens=[])
        return GenerationResult(
            default=got.get("default", empty),
            steered=got.get("steered", empty),
            prompt_tokens=ids,
            seed=seed,
            cancelled=cancelled,
            spec=spec.to_dict(),
        )

    return Job(rows=rows, finish=finish, on_token=on_token, cancel=cancel, client=client)


def prepare_request_job(att: Any, request: SteerRequest, **options: Any) -> Job:
    """`prepare_job` for a whole `SteerRequest` (its prompt or its chat)."""
    if request.messages is not None:
        return prepare_job(
            att, request.messages, request.spec, steered_prompt=request.steered_messages, **options
        )
    return prepare_job(att, request.prompt, request.spec, **options)


def generate(att: Any, prompt: Prompt, spec: SteerSpec, **options: Any) -> GenerationResult:
    """Generate the default and the steered continuation of `prompt` on the calling thread;
    `options` are `prepare_job`'s (on_token, cancel, stats). An exception raised by
    `on_token` propagates."""
    return run_job(att.lm, prepare_job(att, prompt, spec, **options))


def submit(
    scheduler: BatchScheduler, att: Any, prompt: Prompt, spec: SteerSpec, **options: Any
) -> JobHandle:
    """Like `generate`, but decoded by a shared `BatchScheduler` alongside other requests.
    Validation errors raise here; `handle.result()` returns the GenerationResult."""
    if att.lm.model is not scheduler.lm.model:
        raise ValueError("the SAE is attached to a different model than the scheduler's")
    return scheduler.submit(prepare_job(att, prompt, spec, **options))
