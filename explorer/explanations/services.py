"""Writes for explanations: adding one, voting on one."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from explorer.core.exceptions import ApplicationError, NotFound
from explorer.explanations.models import Explanation, Vote
from explorer.saes.models import Feature

MAX_TEXT_CHARS = 1000
# "offline", "human" or "llm:<model id>".
METHOD_RE = re.compile(r"^(offline|human|llm:[\w.\-/:@]{1,150})$")


def explanation_create(*, feature: Feature, text: str, method: str, author: AbstractBaseUser | None = None,
                       score: float | None = None, score_method: str = "") -> Explanation:
    """Add an explanation to `feature`.

    Raises ApplicationError (code invalid_explanation) for an empty or over-long text, or a
    method that is not offline, human or llm:<model>.
    """
    text = " ".join(text.split())  # one line: explanations are labels, shown in tables
    if not text or len(text) > MAX_TEXT_CHARS:
        raise ApplicationError(f"An explanation needs 1 to {MAX_TEXT_CHARS} characters.",
                               code="invalid_explanation")
    if not METHOD_RE.match(method):
        raise ApplicationError(f"Unknown explanation method {method!r}: use offline, human or llm:<model>.",
                               code="invalid_explanation")
    return Explanation.objects.create(feature=feature, text=text, method=method, author=author,
                                      score=score, score_method=score_method)


def vote_cast(*, user: AbstractBaseUser, explanation_id: int, value: int) -> Vote:
    """Record `user`'s vote (+1 / -1) on an explanation, replacing an earlier one.

    Raises ApplicationError for another value, NotFound for an unknown explanation.
    """
    if value not in (-1, 1):
        raise ApplicationError("A vote is +1 or -1.", code="invalid_vote")
    if not Explanation.objects.filter(pk=explanation_id).exists():
        raise NotFound(f"No explanation {explanation_id}.")
    with transaction.atomic():
        vote, _ = Vote.objects.update_or_create(user=user, explanation_id=explanation_id,
                                                defaults={"value": value})
    return vote
