"""The offline explainer's labels."""

from __future__ import annotations

from workers.engine.explain import (
    DENSE,
    DOCUMENT_START,
    FeatureEvidence,
    at_document_start,
    flags,
    label,
    percent,
    show,
)


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


def test_a_dense_feature_is_labelled_dense_with_its_density_not_its_token():
    ev = FeatureEvidence(peak_tokens=[" the"] * 8, promoted=[" cat"], density=0.28)
    assert label(ev) == 'dense: fires on 28% of tokens · promotes " cat"'


def test_a_feature_at_a_tenth_of_tokens_or_less_is_not_dense():
    assert flags(density=0.1, starts=[]) == []
    assert flags(density=0.1001, starts=[]) == [DENSE]


def test_a_feature_peaking_mostly_after_bos_fires_at_document_start():
    ev = FeatureEvidence(peak_tokens=[" William"] * 4, starts=[True, True, True, False])
    assert label(ev) == "fires at document start"
    assert flags(density=0.001, starts=[True, False, False]) == []


def test_a_dense_feature_at_document_start_gets_both_flags():
    assert flags(density=0.28, starts=[True, True]) == [DENSE, DOCUMENT_START]


def test_a_peak_after_an_end_of_text_marker_is_at_document_start():
    assert at_document_start(previous="<|endoftext|>", offset=200)
    assert at_document_start(previous="<s>", offset=0)
    assert not at_document_start(previous=" the", offset=0)


def test_a_peak_on_a_windows_first_token_is_at_document_start_only_when_the_window_starts_it():
    assert at_document_start(previous=None, offset=0)
    assert not at_document_start(previous=None, offset=12)


def test_densities_are_percentages_with_tiny_ones_kept_readable():
    assert percent(0.2834) == "28.3%"
    assert percent(1.234e-4) == "0.0123%"
    assert percent(0.0) == "0%"
    assert percent(1.5e-6) == "0.00015%"
    assert percent(2e-9) == "<0.0001%"
