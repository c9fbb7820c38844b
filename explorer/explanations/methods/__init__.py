"""Explanation methods, one module each: where explanations come from and how they are scored.

- offline: labels written at index time by workers/engine/explain.py; scored by the offline
  detection proxy in `offline.py` (no network).
- llm: any OpenAI-compatible chat endpoint explains (`llm.explain`) and judges (`llm.judge`).
- human: written by signed-in users through explorer.explanations.services; scored like the
  others (LLM judge when an endpoint is configured, else the offline proxy).

Each scorer takes the same `Contexts` (selectors.scoring_contexts) and returns a `Score`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """One window of tokens; `position` is the token a judge looks at (the maximum for an
    activating window, another feature's maximum for a non-activating one)."""

    tokens: list[str]
    position: int


@dataclass(frozen=True)
class Contexts:
    activating: list[Context]
    non_activating: list[Context]


@dataclass(frozen=True)
class Score:
    value: float  # balanced accuracy in [0, 1]; 0.5 is chance
    method: str  # "detection:offline" or "detection:llm:<model>"
    sample_size: int  # contexts judged (both sides)


def balanced_accuracy(
    *, hits_activating: int, n_activating: int, rejections: int, n_non_activating: int
) -> float:
    """(true-positive rate + true-negative rate) / 2: 0.5 for a judge that always says yes
    (or always no), 1 for a perfect one, whatever the ratio of the two sides."""
    return (hits_activating / n_activating + rejections / n_non_activating) / 2


def detection_score(contexts: Contexts, *, fires: Callable[[Context], bool], method: str) -> Score:
    """The balanced accuracy of `fires(ctx)`, asked of every activating context, then of every
    non-activating one (both lists must be non-empty)."""
    hits = sum(fires(c) for c in contexts.activating)
    rejections = sum(not fires(c) for c in contexts.non_activating)
    value = balanced_accuracy(
        hits_activating=hits,
        n_activating=len(contexts.activating),
        rejections=rejections,
        n_non_activating=len(contexts.non_activating),
    )
    return Score(
        value=value,
        method=method,
        sample_size=len(contexts.activating) + len(contexts.non_activating),
    )
