"""Text no field may hold and JSON nested past any message of ours are refused, naming the
place (no database involved)."""

from __future__ import annotations

import pytest

from explorer.core.untrusted import (
    MAX_JSON_DEPTH,
    BadInput,
    check_json,
    check_text,
    json_loads,
    text_problem,
)


def test_ordinary_text_passes():
    assert text_problem("the river bank — “quoted” 😀") is None
    check_text("tab\tand newline\n", "q")


def test_a_nul_character_is_refused_by_name():
    with pytest.raises(BadInput, match=r"^q contains a NUL character") as caught:
        check_text("x\x00y", "q")
    assert caught.value.code == "bad_character"
    assert caught.value.status == 400


def test_an_unpaired_surrogate_is_refused_by_name():
    with pytest.raises(BadInput, match="prompt contains an unpaired surrogate"):
        check_json(json_loads('{"prompt": "a\\ud800b"}'))


def test_a_nul_deep_in_json_is_named_by_its_path():
    value = json_loads('{"features": [{"sae": "demo"}, {"sae": "de\\u0000mo"}]}')
    with pytest.raises(BadInput, match=r"^features\[1\]\.sae contains a NUL character"):
        check_json(value)
    with pytest.raises(BadInput, match=r"^body\.features\[1\]\.sae contains"):
        check_json(value, "body")


def test_a_nul_in_a_field_name_is_refused():
    with pytest.raises(BadInput, match="a field name in body contains a NUL character"):
        check_json({"na\x00me": 1}, "body")


def test_json_nested_past_the_limit_is_refused_without_recursion():
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit: the walk must not recurse
        deep = [deep]
    with pytest.raises(BadInput, match=f"nests deeper than {MAX_JSON_DEPTH} levels") as caught:
        check_json({"prompt": deep})
    assert caught.value.code == "too_deep"


def test_json_at_the_limit_passes():
    value: list = []
    for _ in range(MAX_JSON_DEPTH - 1):
        value = [value]
    check_json(value)


def test_json_nested_past_the_interpreters_limit_is_a_bad_input_not_a_recursion_error():
    with pytest.raises(BadInput, match="a message nests deeper than") as caught:
        json_loads("[" * 1_000_000)
    assert caught.value.code == "too_deep"


def test_text_that_is_not_json_is_named():
    with pytest.raises(BadInput, match="^the request body must be JSON$") as caught:
        json_loads(b"{nope", what="the request body")
    assert caught.value.code == "invalid_json"
    with pytest.raises(BadInput, match="must be JSON"):
        json_loads(b"\xff\xfe")  # not UTF-8 either
