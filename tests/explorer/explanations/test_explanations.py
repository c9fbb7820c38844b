"""Explanation services and selectors: validation, best-first order, votes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.explanations import selectors, services
from explorer.explanations.models import Vote
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def feature():
    return build_indexed_sae(d_sae=4).features[1]


def test_text_is_one_trimmed_line(feature):
    e = services.explanation_create(feature=feature, text="  river\n  bank ", method="offline")
    assert e.text == "river bank"


@pytest.mark.parametrize(
    "method", ["offline", "human", "llm:gpt-4o-mini", "llm:meta-llama/Llama-3.1-8B"]
)
def test_known_methods_are_accepted(feature, method):
    assert services.explanation_create(feature=feature, text="x", method=method).method == method


@pytest.mark.parametrize(
    ("text", "method"), [("", "human"), ("x" * 1001, "human"), ("x", "magic"), ("x", "llm:")]
)
def test_bad_text_or_method_is_refused(feature, text, method):
    with pytest.raises(ApplicationError):
        services.explanation_create(feature=feature, text=text, method=method)


def test_best_explanation_is_the_highest_scored_then_newest(feature):
    services.explanation_create(feature=feature, text="unscored", method="human")
    services.explanation_create(feature=feature, text="low", method="offline", score=0.1)
    services.explanation_create(feature=feature, text="high", method="offline", score=0.8)
    assert selectors.best_explanations(feature_ids=[feature.pk])[feature.pk].text == "high"
    assert [e.text for e in selectors.explanation_list(feature_id=feature.pk)] == [
        "high",
        "low",
        "unscored",
    ]


def test_voting_twice_is_refused_with_a_clear_error(feature, alice):
    e = services.explanation_create(feature=feature, text="x", method="human")
    services.vote_cast(user=alice, explanation_id=e.id, value=1)
    for value in (1, -1):
        with pytest.raises(ApplicationError) as err:
            services.vote_cast(user=alice, explanation_id=e.id, value=value)
        assert (err.value.code, err.value.status) == ("already_voted", 409)
        assert "already voted" in err.value.message
    assert list(Vote.objects.values_list("value", flat=True)) == [1]


def test_a_retracted_vote_can_be_cast_again(feature, alice):
    e = services.explanation_create(feature=feature, text="x", method="human")
    services.vote_cast(user=alice, explanation_id=e.id, value=1)
    services.vote_retract(user=alice, explanation_id=e.id)
    services.vote_cast(user=alice, explanation_id=e.id, value=-1)
    [listed] = selectors.explanation_list(feature_id=feature.pk)
    assert listed.vote_total == -1
    services.vote_retract(user=alice, explanation_id=e.id)
    with pytest.raises(NotFound):
        services.vote_retract(user=alice, explanation_id=e.id)


def test_votes_are_plus_or_minus_one(feature, alice):
    e = services.explanation_create(feature=feature, text="x", method="human")
    with pytest.raises(ApplicationError):
        services.vote_cast(user=alice, explanation_id=e.id, value=2)
    with pytest.raises(NotFound):
        services.vote_cast(user=alice, explanation_id=e.id + 999, value=1)
    with pytest.raises(IntegrityError):
        Vote.objects.create(user=alice, explanation=e, value=5)


def test_among_equally_scored_explanations_the_most_voted_comes_first(feature, alice, bob):
    liked = services.explanation_create(feature=feature, text="liked", method="human")
    services.explanation_create(feature=feature, text="newer", method="human")
    services.vote_cast(user=alice, explanation_id=liked.id, value=1)
    services.vote_cast(user=bob, explanation_id=liked.id, value=1)
    assert [e.text for e in selectors.explanation_list(feature_id=feature.pk)] == ["liked", "newer"]
