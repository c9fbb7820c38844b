"""How "Steer with this feature" opens the steering panel: the lead-in of the feature's
strongest example and a strength that visibly changes the continuation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from explorer.steering.conf import Limits
from explorer.steering.selectors import (
    FEATURE_PANEL_PROMPT,
    FEATURE_STEER_FACTOR,
    feature_steer_start,
    feature_steer_url,
)

LIMITS = Limits(
    strength_max=1000.0,
    max_features=8,
    max_new_tokens=128,
    max_prompt_chars=2000,
    rate_limit=240,
    rate_window_s=60,
    start_timeout_s=10.0,
    max_vector_pairs=256,
)


def test_the_prompt_is_the_example_up_to_just_before_its_peak_token():
    tokens = ["<|endoftext|>", "The", " cat", " sat", " on", " the", " mat"]
    start = feature_steer_start(
        max_activation=2.5, example_tokens=tokens, max_position=5, limits=LIMITS
    )
    assert start.prompt == "The cat sat on"
    assert start.strength == FEATURE_STEER_FACTOR * 2.5


def test_a_long_example_starts_at_its_last_line_or_a_word_start():
    words = [" w" + str(i) for i in range(40)]
    start = feature_steer_start(
        max_activation=1.0, example_tokens=["ish", *words, " end"], max_position=41, limits=LIMITS
    )
    assert start.prompt == "".join(words[-24:]).strip()
    lines = ["A", " title", "\n", "The", " jury", " said", " that", " it", " was", " fine", " x"]
    start = feature_steer_start(
        max_activation=1.0, example_tokens=lines, max_position=10, limits=LIMITS
    )
    assert start.prompt == "The jury said that it was fine"


def test_without_a_usable_example_the_prompt_is_neutral_and_the_strength_stays_in_limits():
    start = feature_steer_start(max_activation=0.0, limits=LIMITS)
    assert (start.prompt, start.strength) == (FEATURE_PANEL_PROMPT, 1.0)
    start = feature_steer_start(
        max_activation=900.0, example_tokens=["<|endoftext|>", " x"], max_position=1, limits=LIMITS
    )
    assert (start.prompt, start.strength) == (FEATURE_PANEL_PROMPT, 1000.0)


def test_the_steering_page_link_carries_prompt_and_strength():
    start = feature_steer_start(
        max_activation=3.0, example_tokens=["A", " b&c", " d"], max_position=2, limits=LIMITS
    )
    url = feature_steer_url(model_slug="demo", sae_slug="res", index=7, start=start)
    assert urlsplit(url).path == "/demo/steer/"
    assert parse_qs(urlsplit(url).query) == {"prompt": ["A b&c"], "f": ["res:7:12"]}
