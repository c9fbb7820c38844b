"""The offline explainer's labels."""

from __future__ import annotations

from workers.engine.explain import FeatureEvidence, label, show


def test_a_token_feature_is_labelled_with_its_token_and_what_it_promotes():
    ev = FeatureEvidence(peak_tokens=[" river"] * 8 + [" bank"] * 2, promoted=[" flows", " bed"])
    assert label(ev) == '" river" (also " bank") · promotes " flows", " bed"'


def test_a_common_previous_token_is_named():
    ev = FeatureEvidence(peak_tokens=[" States"] * 4, previous_tokens=[" United"] * 3 + [" the"])
    assert label(ev) == '" States" · often after " United"'


def test_peaks_on_many_different_tokens_read_as_varied():
    ev = FeatureEvidence(peak_tokens=[" a", " b", " c", " d", " e", " f", " g", " h"])
    assert label(ev).startswith('varied: " a", " b", " c"')


def test_a_dead_feature_says_so():
    assert label(FeatureEvidence(peak_tokens=[], dead=True)).startswith("dead")


def test_tokens_show_newlines_and_are_clipped():
    assert show("\n") == '"⏎"'
    assert show("x" * 50) == '"' + "x" * 19 + '…"'
