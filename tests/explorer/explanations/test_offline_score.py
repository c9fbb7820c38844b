"""The offline detection proxy: which tokens a label names, and its balanced accuracy."""

from __future__ import annotations

import pytest

from explorer.explanations import selectors
from explorer.explanations.methods import Context, Contexts, offline
from tests.builders import build_indexed_sae


@pytest.mark.parametrize(
    ("label", "tokens"),
    [
        ('" of" (also " in") · often after " one" · promotes " the", " them"', {" of", " in"}),
        ('varied: "a", "b", "c" · promotes " x"', {"a", "b", "c"}),
        ('promotes " the"', set()),
        ("prepositions in legal text", set()),
        ('the word "bank"', {"bank"}),
    ],
)
def test_the_quoted_peak_tokens_of_a_label(label, tokens):
    assert offline.quoted_tokens(label) == tokens


def contexts(activating, non_activating):
    return Contexts(
        activating=[Context([t], 0) for t in activating],
        non_activating=[Context([t], 0) for t in non_activating],
    )


def test_the_score_is_balanced_accuracy_of_the_quoted_tokens():
    score = offline.score(
        explanation='" of"', contexts=contexts([" of", " of", " in", " of"], [" the", " of"])
    )
    assert score.value == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert (score.method, score.sample_size) == ("detection:offline", 6)


def test_newlines_are_matched_as_labels_show_them():
    assert offline.score(explanation='"⏎"', contexts=contexts(["\n"], ["."])).value == 1.0


def test_prose_is_not_scored_rather_than_guessed():
    with pytest.raises(offline.UnscorableError, match="quoted tokens"):
        offline.score(explanation="legal prepositions", contexts=contexts([" of"], [" the"]))


def test_without_non_activating_contexts_there_is_no_score():
    with pytest.raises(offline.UnscorableError):
        offline.score(explanation='" of"', contexts=contexts([" of"], []))


@pytest.mark.django_db
def test_contexts_come_from_the_feature_and_from_other_features():
    indexed = build_indexed_sae(d_sae=24, examples_per_feature=4)
    feature = indexed.features[13]
    ctx = selectors.scoring_contexts(feature=feature, n=5)
    assert len(ctx.activating) == 5 and len(ctx.non_activating) == 5
    assert all(c.tokens[c.position] == " of" for c in ctx.activating)
    assert all(c.tokens[c.position] != " of" for c in ctx.non_activating)
    assert selectors.scoring_contexts(feature=feature, n=5) == ctx  # reproducible
