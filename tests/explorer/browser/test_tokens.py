"""Server-side token strips and colours match the frontend's (frontend/src/tokens, scales)."""

from __future__ import annotations

import math

from explorer.browser.colors import activation_color, interpolate_oranges, readable_text_color
from explorer.browser.selectors import interval_share
from explorer.browser.tokens import display_token, strip, token_kind


def test_oranges_match_d3_interpolate_oranges():
    # Values printed by d3.interpolateOranges in node.
    assert interpolate_oranges(0.12) == "rgb(254, 230, 205)"
    assert interpolate_oranges(0.5) == "rgb(251, 141, 61)"
    assert interpolate_oranges(0.9) == "rgb(159, 51, 3)"


def test_activation_colours_are_transparent_at_zero_and_grey_when_unknown():
    assert activation_color(0.0, 2.0) == "transparent"
    assert activation_color(-1.0, 2.0) == "transparent"
    assert activation_color(math.nan, 2.0) == "#9e9e9e"
    assert activation_color(5.0, 2.0) == interpolate_oranges(0.9)


def test_text_is_white_on_dark_fills_only():
    assert readable_text_color("rgb(159, 51, 3)") == "#ffffff"
    assert readable_text_color("rgb(254, 230, 205)") == "#111111"
    assert readable_text_color("transparent") is None


def test_display_token_shows_whitespace_and_control_characters():
    assert display_token("\n") == "↵"
    assert display_token("a\tb") == "a⇥b"
    assert display_token("  ") == "··"
    assert display_token("") == "∅"
    assert display_token("\x01") == "\\x01"
    assert token_kind("<|endoftext|>") == "special"
    assert token_kind("\n") == "newline"


def test_strip_cuts_to_the_width_around_the_max():
    s = strip(
        [str(i) for i in range(20)],
        [0.0] * 10 + [1.0] + [0.0] * 9,
        max_value=1.0,
        max_position=10,
        width=2,
    )
    assert [c.text for c in s.cells] == ["8", "9", "10", "11", "12"]
    assert s.cut_before and s.cut_after
    assert [c.is_max for c in s.cells] == [False, False, True, False, False]


def test_interval_share_splits_bins_linearly():
    assert interval_share([0, 1, 2], [10, 30], 0, 1) == 0.25
    assert interval_share([0, 1, 2], [10, 30], 0.5, 1.5) == 0.5
    assert interval_share([], [], 0, 1) is None


def test_densities_read_as_how_rare_they_are():
    from explorer.browser.templatetags.browser_format import one_in, percent, sig

    assert one_in(0.0004167) == "1 in 2.4k tokens"
    assert one_in(0.1) == "1 in 10 tokens"
    assert one_in(1 / 463) == "1 in 463 tokens"
    assert one_in(0) == "never fires"
    assert percent(0.000417) == "0.0417%"
    assert sig(-1.5) == "\u22121.5"


def test_an_excluded_bos_is_marked_with_its_value_and_escaped():
    s = strip(
        ['<|endoftext|>"><img src=x>', "a", "b"],
        [7.5, 0.0, 1.0],
        max_value=1.0,
        max_position=2,
        width=None,
        bos_excluded=True,
    )
    first, *rest = s.cells
    assert first.excluded and first.value == 7.5 and not any(c.excluded for c in rest)
    markup = str(s.html)
    assert markup.count("token--excluded") == 1
    assert markup.count('title="BOS: excluded from statistics"') == 1
    assert "<img" not in markup and "&lt;img src=x&gt;" in markup
    assert 'data-value="7.5"' in markup


def test_without_an_excluded_bos_no_token_is_marked():
    s = strip(["<|endoftext|>", "a"], [0.0, 1.0], max_value=1.0, max_position=1, width=None)
    assert "token--excluded" not in str(s.html) and "title=" not in str(s.html)
