"""The steering contract: specs validate every field, and their dicts are canonical."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from workers.engine.specs import MODES, Intervention, SpecError, SteerRequest, SteerSpec

# --- specs -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_an_intervention_rejects_a_non_finite_strength(bad):
    with pytest.raises(ValueError, match="strength must be finite"):
        Intervention(feature=1, strength=bad)


def test_an_unknown_mode_is_refused_listing_the_registered_ones():
    with pytest.raises(
        ValueError, match=r"mode must be one of add, clamp, ablate, logit, vector, got 'boost'"
    ):
        Intervention(feature=1, strength=1.0, mode="boost")


def test_a_negative_or_boolean_feature_index_is_refused():
    with pytest.raises(ValueError, match="feature index must be >= 0"):
        Intervention(feature=-1, strength=1.0)
    with pytest.raises(ValueError, match="feature index must be an integer"):
        Intervention(feature=True, strength=1.0)


def test_ablation_kind_applies_only_to_ablate():
    with pytest.raises(ValueError, match="only applies to mode 'ablate'"):
        Intervention(feature=1, strength=1.0, mode="add", ablation="mean")


def test_spec_dict_is_canonical_whatever_the_order_of_interventions():
    a = SteerSpec((Intervention(9, 2.0), Intervention(1, -0.0, "clamp")), seed=3)
    b = SteerSpec((Intervention(1, 0.0, "clamp"), Intervention(9, 2)), seed=3)
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    assert [i["feature"] for i in a.to_dict()["interventions"]] == [1, 9]


def test_spec_round_trips_through_its_dict_and_json():
    spec = SteerSpec(
        (Intervention(4, 1.5, "ablate", "mean"), Intervention(2, 3.0, "logit")),
        positions="generated",
        temperature=0.7,
        top_p=0.9,
        seed=11,
        max_new_tokens=5,
    )
    assert SteerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown steer spec field\(s\) \['temp'\]"):
        SteerSpec.from_dict({"temp": 1.0})
    with pytest.raises(ValueError, match=r"unknown intervention field\(s\) \['sae'\]"):
        SteerSpec.from_dict({"interventions": [{"feature": 1, "strength": 1, "sae": "x"}]})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("positions", "middle", "positions must be one of all, prompt, generated"),
        ("temperature", -0.1, "temperature must be >= 0"),
        ("temperature", math.nan, "temperature must be finite"),
        ("top_p", 0.0, r"top_p must be in \(0, 1\]"),
        ("max_new_tokens", 0, "max_new_tokens must be between 1 and 1024"),
        ("max_new_tokens", 100_000, "max_new_tokens must be between 1 and 1024"),
        ("seed", -1, "seed must be >= 0"),
    ],
)
def test_spec_rejects_bad_sampling_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        SteerSpec(**{field: value})


def test_the_same_feature_twice_in_one_mode_is_refused():
    with pytest.raises(ValueError, match="feature 3 appears twice with mode 'clamp'"):
        SteerSpec((Intervention(3, 1.0, "clamp"), Intervention(3, 2.0, "clamp")))


def test_a_vector_intervention_carries_its_values_and_round_trips():
    iv = Intervention(7, 2.0, "vector", values=(0.5, -1, 0))
    assert iv.values == (0.5, -1.0, 0.0)
    assert Intervention.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv


@pytest.mark.parametrize(
    ("values", "message"),
    [(None, "needs its values"), ((), "needs its values"), ((1.0, math.nan), "must be finite")],
)
def test_a_vector_intervention_needs_finite_values(values, message):
    with pytest.raises(SpecError, match=message):
        Intervention(7, 2.0, "vector", values=values)


def test_values_belong_to_vector_mode_only():
    with pytest.raises(SpecError, match="values only apply to mode 'vector'"):
        Intervention(7, 2.0, "add", values=(1.0,))


def test_a_feature_and_a_vector_with_the_same_number_are_distinct():
    spec = SteerSpec((Intervention(3, 1.0), Intervention(3, 1.0, "vector", values=(1.0,))))
    assert [i.mode for i in spec.interventions] == ["add", "vector"]


def request(**overrides):
    fields = {
        "model": "demo",
        "sae": "demo",
        "prompt": "The cat",
        "spec": SteerSpec((Intervention(5, 2.0),), seed=1),
    }
    fields.update(overrides)
    return SteerRequest(**fields)


def test_a_request_round_trips_through_json_with_the_same_key():
    r = request()
    again = SteerRequest.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.key() == r.key()


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "The dog"},
        {"sae": "other"},
        {"model": "m2"},
        {"spec": SteerSpec((Intervention(5, 2.5),), seed=1)},
    ],
)
def test_everything_in_a_request_changes_its_key(change):
    assert request(**change).key() != request().key()


def test_a_request_refuses_an_empty_prompt_and_unknown_fields():
    with pytest.raises(SpecError, match="prompt must be a non-empty string"):
        request(prompt="  ")
    with pytest.raises(SpecError, match=r"unknown steer request field\(s\) \['x'\]"):
        SteerRequest.from_dict({**request().to_dict(), "x": 1})


def test_every_mode_of_the_contract_has_a_compiler():
    from workers.engine.interventions import registered_modes

    assert sorted(MODES) == list(registered_modes())


def test_the_contract_imports_neither_torch_nor_django():
    code = (
        "import sys, workers.engine.specs; "
        "print([m for m in ('torch', 'django', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- chats -------------------------------------------------------------------------------

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "How are you?"},
]


def test_a_prompt_request_keeps_the_key_it_had_before_chats_existed():
    # computed with the contract as it was before `messages`: cached results stay valid
    assert request().key() == "44df0e644e41385d049bcca058b66c0feb8feb9b6f02656de00031f35ff41a8d"
    assert "messages" not in request().to_dict()


def test_a_chat_request_round_trips_and_its_key_follows_the_conversation():
    r = request(prompt="", messages=CHAT)
    again = SteerRequest.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.key() == r.key()
    assert r.messages[1].content == "Hi"
    other = [*CHAT[:2], {"role": "assistant", "content": "Hey."}, CHAT[3]]
    assert request(prompt="", messages=other).key() != r.key()
    diverged = request(prompt="", messages=CHAT, steered_messages=other)
    assert diverged.key() != r.key()
    # a steered history equal to the default one is the same request
    assert request(prompt="", messages=CHAT, steered_messages=CHAT) == r


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": CHAT}, "either prompt or messages, not both"),
        ({"prompt": "", "messages": []}, "messages must be a non-empty list"),
        ({"prompt": "", "messages": CHAT[:3]}, "last of messages must be a non-empty user"),
        ({"prompt": "", "messages": [{"role": "bot", "content": "x"}]}, "message role must be"),
        ({"prompt": "", "messages": [{"role": "user"}]}, "needs 'role' and 'content'"),
        ({"prompt": "", "messages": [{"role": "user", "content": 3}]}, "content must be a string"),
        ({"prompt": "", "messages": [CHAT[1], CHAT[0], CHAT[1]]}, "system message may only"),
        ({"steered_messages": CHAT}, "steered_messages needs messages"),
        (
            {"prompt": "", "messages": CHAT, "steered_messages": CHAT[1:]},
            "must be the same conversation",
        ),
        (
            {
                "prompt": "",
                "messages": CHAT,
                "steered_messages": [*CHAT[:3], {"role": "user", "content": "Other?"}],
            },
            r"steered_messages\[3\] differs",
        ),
        (
            {"spec": SteerSpec(positions="assistant")},
            "'assistant' applies to chats",
        ),
    ],
)
def test_a_chat_request_refuses_what_is_not_a_conversation(fields, message):
    with pytest.raises(SpecError, match=message):
        request(**fields)
