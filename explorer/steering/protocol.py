"""Client messages of the steering websocket (DESIGN.md §6), parsed strictly.

Every problem raises `ProtocolError` (an ApplicationError) whose message names the field and
the value; the consumer turns it into {"type": "error", "gen": ..., "message": ...} and keeps
the socket open. Fields shared with the engine's contract are checked by its validators
(workers/engine/specs.py); this module adds the message's shape and the server's limits. No
database access here: `selectors.steer_request_resolve` checks SAEs, feature indexes and vectors
against the database afterwards.

Accepted on top of DESIGN.md §6: `model` (the model slug; else the socket's `?model=`, else the
only registered model), `top_p`, and per feature `label` / `max_activation`, which the page
carries for display and the server ignores. A chat sends `messages` ([{role, content}], ending
with the user's turn) instead of `prompt`, and `steered_messages` when the steered column's
history has its own replies (workers/engine/specs.py). A feature entry is either
{"sae", "index", "strength", "mode"} or {"vector": <steering vector id>, "strength"}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explorer.core import untrusted
from explorer.core.exceptions import ApplicationError
from explorer.steering.conf import Limits
from workers.engine import specs

MODES = specs.FEATURE_MODES  # a client's modes; vectors are terms of their own
POSITIONS = specs.POSITIONS
DEFAULTS: dict[str, Any] = {
    "positions": "all",
    "temperature": 0.7,
    "top_p": 0.95,
    "seed": 0,
    "max_new_tokens": 32,
}
STEER_FIELDS = {
    "type",
    "gen",
    "model",
    "prompt",
    "messages",
    "steered_messages",
    "features",
    "positions",
    "temperature",
    "top_p",
    "seed",
    "max_new_tokens",
}
FEATURE_FIELDS = {"sae", "index", "strength", "mode", "label", "max_activation"}
VECTOR_FIELDS = {"vector", "strength", "label"}
MAX_SEED = specs.MAX_INDEX


class ProtocolError(ApplicationError):
    code = "bad_message"


@dataclass(frozen=True)
class FeatureTerm:
    sae: str
    index: int
    strength: float
    mode: str

    def to_dict(self) -> dict:
        return {"sae": self.sae, "index": self.index, "strength": self.strength, "mode": self.mode}


@dataclass(frozen=True)
class VectorTerm:
    vector: int
    strength: float

    def to_dict(self) -> dict:
        return {"vector": self.vector, "strength": self.strength}


@dataclass(frozen=True)
class SteerMessage:
    gen: int | str
    model: str | None
    prompt: str  # "" for a chat
    features: tuple[FeatureTerm, ...] = ()
    messages: specs.Chat | None = None
    steered_messages: specs.Chat | None = None
    vectors: tuple[VectorTerm, ...] = ()
    positions: str = "all"
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    max_new_tokens: int = 32


@dataclass(frozen=True)
class CancelMessage:
    gen: int | str


@dataclass(frozen=True)
class ResumeMessage:
    gen: int | str
    after_seq: int


Message = SteerMessage | CancelMessage | ResumeMessage


@dataclass
class _Ctx:
    limits: Limits
    gen: Any = field(default=None)


def gen_of(content: Any) -> int | str | None:
    """The message's `gen` if it is a valid one (for the error frame), else None."""
    if isinstance(content, dict):
        try:
            return _gen(content.get("gen"))
        except ProtocolError:
            return None
    return None


def _gen(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ProtocolError(f"gen must be an integer or a string, got {value!r:.40}")
    if isinstance(value, str) and not 0 < len(value) <= 64:
        raise ProtocolError("gen must be a string of 1 to 64 characters")
    return value


def _number(value: Any, name: str) -> float:
    try:
        return specs.finite_float(value, name)
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None


def _integer(value: Any, name: str, low: int, high: int) -> int:
    try:
        return specs.integer(value, name, low, high)
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None


def _one_of(value: Any, name: str, choices: tuple[str, ...]) -> str:
    try:
        return specs.one_of(value, name, choices)
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None


def _strength(value: Any, limits: Limits, where: str) -> float:
    s = _number(value, f"{where}.strength")
    if abs(s) > limits.strength_max:
        raise ProtocolError(
            f"{where}.strength {s:g} is outside the allowed range "
            f"[{-limits.strength_max:g}, {limits.strength_max:g}]"
        )
    return s


def _unknown(d: dict, allowed: set[str], what: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ProtocolError(f"unknown field(s) in {what}: {', '.join(map(str, extra))}")


def _terms(items: Any, limits: Limits) -> tuple[tuple[FeatureTerm, ...], tuple[VectorTerm, ...]]:
    if not isinstance(items, list):
        raise ProtocolError("features must be a list")
    if len(items) > limits.max_features:
        raise ProtocolError(f"too many features: {len(items)} (at most {limits.max_features})")
    features: list[FeatureTerm] = []
    vectors: list[VectorTerm] = []
    for i, item in enumerate(items):
        where = f"features[{i}]"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where} must be an object")
        if "vector" in item:
            _unknown(item, VECTOR_FIELDS, where)
            vec = _integer(item.get("vector"), f"{where}.vector", 1, 2**63 - 1)
            vectors.append(
                VectorTerm(vector=vec, strength=_strength(item.get("strength"), limits, where))
            )
            continue
        _unknown(item, FEATURE_FIELDS, where)
        sae = item.get("sae")
        if not isinstance(sae, str) or not sae:
            raise ProtocolError(f"{where}.sae must be an SAE slug, got {sae!r:.40}")
        index = _integer(item.get("index"), f"{where}.index", 0, specs.MAX_INDEX)
        mode = _one_of(item.get("mode", "add"), f"{where}.mode", MODES)
        features.append(
            FeatureTerm(
                sae=sae,
                index=index,
                mode=mode,
                strength=_strength(item.get("strength"), limits, where),
            )
        )
    seen: set[tuple[str, int, str]] = set()
    for f in features:
        if (f.sae, f.index, f.mode) in seen:
            raise ProtocolError(f"feature {f.sae}:{f.index} appears twice with mode {f.mode}")
        seen.add((f.sae, f.index, f.mode))
    if len({v.vector for v in vectors}) != len(vectors):
        raise ProtocolError("a steering vector appears twice")
    return tuple(features), tuple(vectors)


def _chat(value: Any, name: str) -> specs.Chat:
    try:
        return specs.chat_messages(value, name)
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None


def _prompt_or_chat(
    content: dict, limits: Limits
) -> tuple[str, specs.Chat | None, specs.Chat | None]:
    """(prompt, messages, steered_messages): a prompt, or a chat with "" as its prompt."""
    has_prompt, has_chat = "prompt" in content, "messages" in content
    if has_prompt and has_chat:
        raise ProtocolError("send either prompt or messages (a chat), not both")
    if not has_chat:
        has_prompt = True  # a message with neither is missing its prompt
    if has_prompt:
        if "steered_messages" in content:
            raise ProtocolError("steered_messages needs messages")
        prompt = content.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ProtocolError("prompt must be a non-empty string")
        if len(prompt) > limits.max_prompt_chars:
            raise ProtocolError(
                f"prompt is too long: {len(prompt)} characters (at most {limits.max_prompt_chars})"
            )
        return prompt, None, None
    messages = _chat(content["messages"], "messages")
    raw = content.get("steered_messages")
    steered = _chat(raw, "steered_messages") if raw is not None else None
    for name, chat in (("messages", messages), ("steered_messages", steered or ())):
        chars = sum(len(m.content) for m in chat)
        if chars > limits.max_chat_chars:
            raise ProtocolError(
                f"{name} is too long: {chars} characters (at most {limits.max_chat_chars})"
            )
    return "", messages, steered


def parse_steer(content: dict, limits: Limits) -> SteerMessage:
    _unknown(content, STEER_FIELDS, "steer")
    gen = _gen(content.get("gen"))
    model = content.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ProtocolError(f"model must be a model slug, got {model!r:.40}")
    prompt, messages, steered = _prompt_or_chat(content, limits)
    features, vectors = _terms(content.get("features", []), limits)
    positions = _one_of(content.get("positions", DEFAULTS["positions"]), "positions", POSITIONS)
    temperature = _number(content.get("temperature", DEFAULTS["temperature"]), "temperature")
    if not 0 <= temperature <= 5:
        raise ProtocolError(f"temperature must be between 0 and 5, got {temperature:g}")
    top_p = _number(content.get("top_p", DEFAULTS["top_p"]), "top_p")
    seed = _integer(content.get("seed", DEFAULTS["seed"]), "seed", 0, MAX_SEED)
    n = _integer(
        content.get("max_new_tokens", DEFAULTS["max_new_tokens"]),
        "max_new_tokens",
        1,
        limits.max_new_tokens,
    )
    try:  # the rest of the sampling rules are the engine's (e.g. top_p in (0, 1])
        specs.SteerSpec(
            positions=positions, temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=n
        )
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None
    if positions == "assistant" and messages is None:
        raise ProtocolError("positions 'assistant' applies to chats (messages), not a prompt")
    return SteerMessage(
        gen=gen,
        model=model,
        prompt=prompt,
        messages=messages,
        steered_messages=steered,
        features=features,
        vectors=vectors,
        positions=positions,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        max_new_tokens=n,
    )


def loads(text: str | bytes) -> Any:
    """A message's JSON. Raises ProtocolError when it is not JSON or nests past the
    interpreter's limit."""
    try:
        return untrusted.json_loads(text)
    except untrusted.BadInput as exc:
        raise ProtocolError(exc.message) from None


def _storable(content: dict) -> None:
    """No text a field cannot store (a NUL), no nesting no message needs (explorer/core/
    untrusted.py), checked before any field is read."""
    try:
        untrusted.check_json(content)
    except untrusted.BadInput as exc:
        raise ProtocolError(exc.message) from None


def parse_message(content: Any, limits: Limits) -> Message:
    """Parse one client message. Raises ProtocolError naming what is wrong."""
    if not isinstance(content, dict):
        raise ProtocolError("a message must be a JSON object")
    _storable(content)
    kind = content.get("type")
    if kind == "steer":
        return parse_steer(content, limits)
    if kind == "cancel":
        _unknown(content, {"type", "gen"}, "cancel")
        return CancelMessage(gen=_gen(content.get("gen")))
    if kind == "resume":
        _unknown(content, {"type", "gen", "after_seq"}, "resume")
        return ResumeMessage(
            gen=_gen(content.get("gen")),
            after_seq=_integer(content.get("after_seq", 0), "after_seq", 0, 2**31 - 1),
        )
    raise ProtocolError(f"unknown message type {kind!r:.40}; expected steer, cancel or resume")


def parse_request(content: Any, limits: Limits) -> tuple[SteerMessage, int | str | None]:
    """A steer request sent without the websocket (`POST /api/v1/steer`): a `steer` message whose
    `type` and `gen` may be left out, checked by `parse_steer` (whatever it accepts, with the
    same messages). Returns the message and the client's gen (None when left out)."""
    if not isinstance(content, dict):
        raise ProtocolError("a message must be a JSON object")
    _storable(content)
    kind = content.get("type", "steer")
    if kind != "steer":
        raise ProtocolError(f'type must be "steer" or left out, got {kind!r:.40}')
    message = parse_steer({"gen": 0, **content}, limits)
    return message, message.gen if "gen" in content else None
