"""Client messages are parsed strictly; each problem is named (no database involved)."""

from __future__ import annotations

import math

import pytest

from explorer.steering.conf import Limits
from explorer.steering.protocol import (
    CancelMessage,
    ProtocolError,
    ResumeMessage,
    SteerMessage,
    gen_of,
    loads,
    parse_message,
    parse_request,
)

LIMITS = Limits(
    strength_max=100.0,
    max_features=2,
    max_new_tokens=50,
    max_prompt_chars=20,
    rate_limit=10,
    rate_window_s=60,
    start_timeout_s=5.0,
    max_vector_pairs=10,
)


def steer(**overrides):
    message = {
        "type": "steer",
        "gen": 1,
        "prompt": "Hello",
        "features": [{"sae": "demo", "index": 3, "strength": 4.0, "mode": "clamp"}],
    }
    message.update(overrides)
    return message


def test_a_valid_steer_gets_defaults_for_what_it_leaves_out():
    m = parse_message(steer(), LIMITS)
    assert isinstance(m, SteerMessage)
    assert (m.positions, m.temperature, m.top_p, m.seed, m.max_new_tokens) == (
        "all",
        0.7,
        0.95,
        0,
        32,
    )
    assert m.features[0].mode == "clamp"


def test_display_fields_of_a_feature_are_accepted_and_ignored():
    f = {"sae": "demo", "index": 3, "strength": 4, "label": "<b>x</b>", "max_activation": 2.5}
    assert parse_message(steer(features=[f]), LIMITS).features[0].strength == 4.0


def test_a_vector_term_is_accepted():
    m = parse_message(steer(features=[{"vector": 7, "strength": -2}]), LIMITS)
    assert m.vectors[0].vector == 7 and m.features == ()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"features": [{"sae": "demo", "index": 1, "strength": 101}]}, "outside the allowed range"),
        (
            {"features": [{"sae": "demo", "index": 1, "strength": -101}]},
            "outside the allowed range",
        ),
        ({"features": [{"sae": "demo", "index": 1, "strength": math.nan}]}, "must be finite"),
        ({"features": [{"sae": "demo", "index": 1, "strength": "8"}]}, "must be a number"),
        ({"features": [{"sae": "demo", "index": 1, "strength": True}]}, "must be a number"),
        ({"features": [{"sae": "demo", "index": -1, "strength": 1}]}, "index must be between"),
        (
            {"features": [{"sae": "demo", "index": 1, "strength": 1, "mode": "xor"}]},
            "mode must be one of",
        ),
        (
            {"features": [{"sae": "demo", "index": 1, "strength": 1, "colour": 1}]},
            "unknown field(s) in features[0]: colour",
        ),
        (
            {"features": [{"sae": "demo", "index": i, "strength": 1} for i in range(3)]},
            "too many features: 3",
        ),
        ({"features": [{"sae": "demo", "index": 1, "strength": 1}] * 2}, "appears twice"),
        ({"features": "all"}, "features must be a list"),
        ({"prompt": "x" * 21}, "prompt is too long: 21 characters"),
        ({"prompt": "   "}, "prompt must be a non-empty string"),
        ({"max_new_tokens": 51}, "max_new_tokens must be between 1 and 50"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between"),
        ({"temperature": -1}, "temperature must be between"),
        ({"top_p": 0}, "top_p must be in"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"positions": "middle"}, "positions must be one of"),
        ({"gen": None}, "gen must be an integer or a string"),
        ({"colour": "red"}, "unknown field(s) in steer: colour"),
    ],
)
def test_it_rejects_bad_steer_messages_naming_the_problem(overrides, needle):
    with pytest.raises(ProtocolError) as info:
        parse_message(steer(**overrides), LIMITS)
    assert needle in info.value.message


@pytest.mark.parametrize("content", [[], "steer", 3, None, {"type": "ping"}, {"gen": 1}])
def test_it_rejects_messages_of_no_known_type(content):
    with pytest.raises(ProtocolError):
        parse_message(content, LIMITS)


def test_cancel_and_resume_are_parsed():
    assert parse_message({"type": "cancel", "gen": "g"}, LIMITS) == CancelMessage(gen="g")
    assert parse_message({"type": "resume", "gen": 2, "after_seq": 5}, LIMITS) == ResumeMessage(
        gen=2, after_seq=5
    )


def test_the_error_frame_names_the_gen_when_it_is_valid():
    assert gen_of({"type": "steer", "gen": 9}) == 9
    assert gen_of({"type": "steer", "gen": [1]}) is None
    assert gen_of("junk") is None


def test_a_permalink_id_follows_from_the_request_key():
    from explorer.steering.streams import result_id_for

    assert result_id_for("a" * 64) == result_id_for("a" * 64) != result_id_for("b" * 64)
    assert len(result_id_for("a" * 64)) == 12
    assert set(result_id_for("a" * 64)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


# --- chats -------------------------------------------------------------------------------

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def chat(**overrides):
    message = steer(messages=[*CHAT, {"role": "user", "content": "How are you?"}])
    del message["prompt"]
    message.update(overrides)
    return message


def test_a_chat_message_is_parsed_into_the_engines_turns():
    m = parse_message(chat(positions="assistant"), LIMITS)
    assert m.prompt == "" and [t.role for t in m.messages] == ["user", "assistant", "user"]
    assert m.steered_messages is None and m.positions == "assistant"
    other = [CHAT[0], {"role": "assistant", "content": "Go"}, {"role": "user", "content": "?"}]
    m = parse_message(chat(steered_messages=other), LIMITS)
    assert m.steered_messages[1].content == "Go"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (steer(messages=CHAT), "either prompt or messages"),
        (chat(messages=CHAT), "last of messages must be a non-empty user message"),
        (chat(messages="hi"), "messages must be a non-empty list"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "message role must be one of"),
        (chat(messages=[{"role": "user", "content": "x", "name": "a"}]), "unknown message field"),
        (chat(messages=[{"role": "user", "content": "x" * 9000}]), "messages is too long"),
        (steer(steered_messages=CHAT), "steered_messages needs messages"),
        (steer(positions="assistant"), "'assistant' applies to chats"),
    ],
)
def test_a_bad_chat_is_refused_naming_what_is_wrong(message, error):
    with pytest.raises(ProtocolError, match=error):
        parse_message(message, LIMITS)


def test_an_http_request_is_a_steer_message_whose_type_and_gen_may_be_left_out():
    bare = {k: v for k, v in steer().items() if k not in ("type", "gen")}
    message, gen = parse_request(bare, LIMITS)
    assert gen is None
    assert message == parse_message(steer(gen=0), LIMITS)  # gen: a placeholder
    message, gen = parse_request({**bare, "type": "steer", "gen": "nb-7"}, LIMITS)
    assert gen == message.gen == "nb-7"


def test_an_http_request_is_refused_with_the_websockets_messages():
    bare = {k: v for k, v in steer().items() if k not in ("type", "gen")}
    for bad in ({"colour": "red"}, {"prompt": "x" * 21}, {"gen": None}):
        with pytest.raises(ProtocolError) as http:
            parse_request({**bare, **bad}, LIMITS)
        with pytest.raises(ProtocolError) as ws:
            parse_message({**steer(), **bad}, LIMITS)
        assert http.value.message == ws.value.message
    with pytest.raises(ProtocolError, match='type must be "steer" or left out'):
        parse_request({**bare, "type": "cancel"}, LIMITS)
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        parse_request([bare], LIMITS)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"prompt": "a\x00b"}, "prompt contains a NUL character"),
        ({"gen": "g\x00"}, "gen contains a NUL character"),
        (
            {"features": [{"sae": "de\x00mo", "index": 1, "strength": 1.0}]},
            r"features\[0\]\.sae contains a NUL character",
        ),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, "contains an unpaired surrogate"),
        (
            {"prompt": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            "nests deeper",
        ),
    ],
)
def test_text_no_field_may_hold_is_refused_by_name_over_both_transports(bad, error):
    with pytest.raises(ProtocolError, match=error):
        parse_message({**steer(), **bad}, LIMITS)
    with pytest.raises(ProtocolError, match=error):
        parse_request({**steer(), **bad}, LIMITS)


def test_json_nested_past_the_recursion_limit_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="a message nests deeper than 32 levels"):
        loads("[" * 100_000)
    with pytest.raises(ProtocolError, match="^a message must be JSON$"):
        loads("{not json")
