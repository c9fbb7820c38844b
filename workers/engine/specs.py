"""The steering contract: what a steered generation is asked to do, as plain data.

`SteerRequest` (model and SAE sources, prompt, `SteerSpec`) is the one wire format between
the web and the live worker and the one input of the result cache's hash (`key()`). The web
builds it once from a client's message; the worker decodes it once with `from_dict`. This
module imports only the standard library, so the web process (which must not import torch)
shares it; the math that carries a spec out is in interventions.py.

Modes of an `Intervention` (the math is documented in interventions.py):

- ``add``, ``clamp``, ``ablate`` (``zero`` / ``mean`` / ``resample``), ``logit``: one SAE
  feature, `feature` its index;
- ``vector``: ``x += s · v`` with `values` = v, a direction in the hook's space (e.g. a
  contrastive-activation-addition vector); `feature` is the vector's own id, which names it
  in the request and keeps two vectors apart.

What is continued is either a plain `prompt` or a chat: `messages` ({role, content}, the
default row's conversation, ending with the user's turn) and, when the two rows' histories have
diverged, `steered_messages` (the same turns with the steered row's own earlier replies). The
model's chat template renders them (chat.py); positions ``assistant`` steers only the
assistant's turns (earlier replies, the reply's header and the reply being generated).

`to_dict()` forms are canonical: keys are fixed, interventions sorted, floats plain Python
floats (-0.0 folded to 0.0), so equal requests give equal dicts and equal keys.

Each field has one validator here (`finite_float`, `integer`, `one_of`); the web's protocol
uses the same ones for its messages, adding only its own policy limits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Part of every SteeringResult hash: bump when the steering math, sampling or decoding changes
# what a given request generates, so cached results from the old engine are not served.
STEERING_VERSION = 1

MODES = ("add", "clamp", "ablate", "logit", "vector")
FEATURE_MODES = ("add", "clamp", "ablate", "logit")  # modes that name an SAE feature
POSITIONS = ("all", "prompt", "generated", "assistant")
ROLES = ("system", "user", "assistant")
ABLATIONS = ("zero", "mean", "resample")
MAX_NEW_TOKENS = 1024  # a guard against runaway requests, not a model limit
MAX_INDEX = 2**31 - 1
MAX_MESSAGES = 200


class SpecError(ValueError):
    """A field of a spec is invalid; the message names the field and the value."""


# --------------------------------------------------------------------------- field validators


def finite_float(value: Any, name: str) -> float:
    """`value` as a finite float (ints accepted, bools refused); -0.0 becomes 0.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{name} must be a number, got {value!r:.40}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(f"{name} must be finite, got {value}")
    return value + 0.0


def integer(value: Any, name: str, low: int = 0, high: int | None = None) -> int:
    """`value` as an int in [low, high] (a float like 3.0, as JavaScript may send, counts)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r:.40}")
    if high is None and value < low:
        raise SpecError(f"{name} must be >= {low}, got {value}")
    if high is not None and not low <= value <= high:
        raise SpecError(f"{name} must be between {low} and {high}, got {value}")
    return value


def one_of(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(f"{name} must be one of {', '.join(choices)}, got {value!r:.40}")
    return value


def check_keys(d: Any, allowed: Sequence[str], what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise SpecError(f"{what} must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise SpecError(f"unknown {what} field(s) {unknown}; allowed: {sorted(allowed)}")
    return d


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Intervention:
    """One feature (or vector) steered one way. `strength` is the raw activation value (add
    amount, clamp target, logit scale, vector scale); ablation ignores it but it must still be
    finite. `values` is the direction of mode ``vector`` and None for every other mode."""

    feature: int
    strength: float
    mode: str = "add"
    ablation: str = "zero"
    values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "feature", integer(self.feature, "feature index"))
        set_(self, "strength", finite_float(self.strength, "strength"))
        one_of(self.mode, "mode", MODES)
        one_of(self.ablation, "ablation", ABLATIONS)
        if self.mode != "ablate" and self.ablation != "zero":
            raise SpecError(f"ablation={self.ablation!r} only applies to mode 'ablate'")
        if self.mode == "vector":
            if (
                not isinstance(self.values, Sequence)
                or isinstance(self.values, str)
                or not self.values
            ):
                raise SpecError("mode 'vector' needs its values (a non-empty list of numbers)")
            set_(self, "values", tuple(finite_float(v, "vector value") for v in self.values))
        elif self.values is not None:
            raise SpecError(f"values only apply to mode 'vector', not {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "feature": self.feature,
            "strength": self.strength,
            "mode": self.mode,
            "ablation": self.ablation,
        }
        if self.values is not None:
            d["values"] = list(self.values)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Intervention:
        check_keys(d, ("feature", "strength", "mode", "ablation", "values"), "intervention")
        if "feature" not in d or "strength" not in d:
            raise SpecError("an intervention needs 'feature' and 'strength'")
        return cls(**d)

    def sort_key(self) -> tuple:
        return (self.mode == "vector", self.feature, self.mode, self.ablation, self.strength)


@dataclass(frozen=True)
class SteerSpec:
    """Everything that decides a steered generation besides the model, SAE and prompt.

    temperature 0 means greedy; seed None means a fresh random seed (reported in the result).
    Interventions are stored sorted, so the order a client sent them in does not matter.
    """

    interventions: tuple[Intervention, ...] = ()
    positions: str = "all"
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        items = tuple(
            i if isinstance(i, Intervention) else Intervention.from_dict(i)
            for i in self.interventions
        )
        seen: set[tuple[int, str]] = set()
        for i in items:
            if (i.feature, i.mode) in seen:
                what = "vector" if i.mode == "vector" else "feature"
                raise SpecError(f"{what} {i.feature} appears twice with mode {i.mode!r}")
            seen.add((i.feature, i.mode))
        set_(self, "interventions", tuple(sorted(items, key=Intervention.sort_key)))
        one_of(self.positions, "positions", POSITIONS)
        t = finite_float(self.temperature, "temperature")
        if t < 0:
            raise SpecError(f"temperature must be >= 0, got {t:g}")
        set_(self, "temperature", t)
        p = finite_float(self.top_p, "top_p")
        if not 0 < p <= 1:
            raise SpecError(f"top_p must be in (0, 1], got {p:g}")
        set_(self, "top_p", p)
        if self.seed is not None:
            set_(self, "seed", integer(self.seed, "seed"))
        set_(
            self,
            "max_new_tokens",
            integer(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "interventions": [i.to_dict() for i in self.interventions],
            "positions": self.positions,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SteerSpec:
        keys = ("interventions", "positions", "temperature", "top_p", "seed", "max_new_tokens")
        d = dict(check_keys(d, keys, "steer spec"))
        items = d.get("interventions", ())
        if not isinstance(items, (list, tuple)):
            raise SpecError("interventions must be a list")
        d["interventions"] = tuple(Intervention.from_dict(i) for i in items)
        return cls(**d)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a chat: `role` is system, user or assistant."""

    role: str
    content: str

    def __post_init__(self) -> None:
        one_of(self.role, "message role", ROLES)
        if not isinstance(self.content, str):
            raise SpecError(f"message content must be a string, got {self.content!r:.40}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChatMessage:
        check_keys(d, ("role", "content"), "message")
        if "role" not in d or "content" not in d:
            raise SpecError("a message needs 'role' and 'content'")
        return cls(role=d["role"], content=d["content"])


Chat = tuple[ChatMessage, ...]


def chat_messages(items: Any, name: str = "messages") -> Chat:
    """A conversation from a list of ChatMessage or {role, content} dicts: 1 to MAX_MESSAGES
    turns, system turns only first, ending with a non-empty user turn (the reply to it is what
    gets generated)."""
    if not isinstance(items, (list, tuple)) or not items:
        raise SpecError(f"{name} must be a non-empty list of {{role, content}} objects")
    if len(items) > MAX_MESSAGES:
        raise SpecError(f"{name} has {len(items)} turns (at most {MAX_MESSAGES})")
    chat = tuple(m if isinstance(m, ChatMessage) else ChatMessage.from_dict(m) for m in items)
    seen_other = False
    for i, m in enumerate(chat):
        if m.role == "system" and seen_other:
            raise SpecError(f"{name}[{i}]: a system message may only come first")
        seen_other = seen_other or m.role != "system"
    if chat[-1].role != "user" or not chat[-1].content.strip():
        raise SpecError(f"the last of {name} must be a non-empty user message (the one to answer)")
    return chat


def _same_turns(messages: Chat, steered: Chat) -> None:
    """The steered row's conversation may differ from the default's only in assistant replies."""
    if len(messages) != len(steered):
        raise SpecError(
            f"steered_messages has {len(steered)} turns, messages {len(messages)}: they must be "
            "the same conversation (only the assistant's replies may differ)"
        )
    for i, (a, b) in enumerate(zip(messages, steered, strict=True)):
        if a.role != b.role or (a.role != "assistant" and a.content != b.content):
            raise SpecError(
                f"steered_messages[{i}] differs from messages[{i}]: only the assistant's "
                "replies may differ"
            )


@dataclass(frozen=True)
class SteerRequest:
    """A whole steered generation: `model` and `sae` are sources as the engine loads them
    ("demo", a local path, a hub id or SAELens `release:id`); `prompt` the text to continue,
    or `messages` (and `steered_messages`, see the module docstring) the chat to answer."""

    model: str
    sae: str
    prompt: str
    spec: SteerSpec
    messages: Chat | None = None
    steered_messages: Chat | None = None

    def __post_init__(self) -> None:
        for name in ("model", "sae"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise SpecError(f"{name} must be a non-empty source string")
        if not isinstance(self.spec, SteerSpec):
            raise SpecError(f"spec must be a SteerSpec, got {type(self.spec).__name__}")
        if self.messages is None:
            if self.steered_messages is not None:
                raise SpecError("steered_messages needs messages")
            if not isinstance(self.prompt, str) or not self.prompt.strip():
                raise SpecError("prompt must be a non-empty string")
            if self.spec.positions == "assistant":
                raise SpecError("positions 'assistant' applies to chats (messages), not a prompt")
            return
        if self.prompt != "":
            raise SpecError("send either prompt or messages, not both")
        set_ = object.__setattr__
        set_(self, "messages", chat_messages(self.messages))
        if self.steered_messages is not None:
            steered = chat_messages(self.steered_messages, "steered_messages")
            _same_turns(self.messages, steered)
            # canonical: identical histories are written once
            set_(self, "steered_messages", None if steered == self.messages else steered)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "sae": self.sae,
            "prompt": self.prompt,
            "spec": self.spec.to_dict(),
        }
        if self.messages is not None:  # absent for prompts: their keys stay as they were
            d["messages"] = [m.to_dict() for m in self.messages]
        if self.steered_messages is not None:
            d["steered_messages"] = [m.to_dict() for m in self.steered_messages]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SteerRequest:
        keys = ("model", "sae", "prompt", "spec", "messages", "steered_messages")
        d = check_keys(d, keys, "steer request")
        missing = sorted({"model", "sae", "prompt", "spec"} - set(d))
        if missing:
            raise SpecError(f"a steer request needs {', '.join(missing)}")
        return cls(
            model=d["model"],
            sae=d["sae"],
            prompt=d["prompt"],
            spec=SteerSpec.from_dict(d["spec"]),
            messages=d.get("messages"),
            steered_messages=d.get("steered_messages"),
        )

    def key(self) -> str:
        """The hash of everything that decides the generation, with STEERING_VERSION: the
        result cache's key (equal requests give equal keys)."""
        canonical = json.dumps(
            {**self.to_dict(), "version": STEERING_VERSION},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()
