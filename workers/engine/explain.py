"""The offline explainer: a short label per feature from its indexed examples and logit effects.

No network, no model call: it reads what indexing already computed (top examples and the
feature's direct logit effects) and says what a reader would first check:

    >>> label(FeatureEvidence(peak_tokens=[" of", " of", " of", " in"],
    ...                       previous_tokens=[" one", " one", " most", " one"],
    ...                       promoted=[" the", " them"]))
    '" of" (also " in") · often after " one" · promotes " the", " them"'

- the tokens it fires on most (the token at each top example's maximum), the commonest first,
  others named when they carry at least a fifth of the examples;
- the token just before, when one token precedes at least half of the peaks (a causal model's
  feature can only depend on what came before);
- the tokens its decoder direction promotes most through the unembedding.

A feature whose peaks are all different gets "varied: a, b, c". Tokens are shown quoted with
whitespace made visible enough to read (newline as ⏎).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MIN_SHARE_ALSO = 0.2  # another peak token is named when it has this share of the peaks
MIN_SHARE_MAIN = 0.3  # below this the peaks are "varied"
MIN_SHARE_PREVIOUS = 0.5
MAX_PROMOTED = 3
MAX_TOKEN_CHARS = 20


@dataclass
class FeatureEvidence:
    peak_tokens: list[str]  # the token at the maximum of each top example, best first
    previous_tokens: list[str] = field(default_factory=list)  # the token before each peak
    promoted: list[str] = field(default_factory=list)  # top logit tokens, strongest first
    dead: bool = False


def show(token: str) -> str:
    """A token as a reader sees it in a label: quoted, newlines and tabs visible, clipped."""
    t = token.replace("\n", "⏎").replace("\t", "⇥").replace("\r", "␍")
    if len(t) > MAX_TOKEN_CHARS:
        t = t[: MAX_TOKEN_CHARS - 1] + "…"
    return f'"{t}"'


def label(ev: FeatureEvidence) -> str:
    """The label of one feature (see the module docstring)."""
    if ev.dead:
        return "dead: never fired on the indexed corpus"
    parts = []
    if ev.peak_tokens:
        counts = Counter(ev.peak_tokens).most_common()
        n = len(ev.peak_tokens)
        top, top_n = counts[0]
        if top_n / n >= MIN_SHARE_MAIN:
            also = [t for t, c in counts[1:3] if c / n >= MIN_SHARE_ALSO]
            named = ", ".join(show(t) for t in also)
            parts.append(show(top) + (f" (also {named})" if also else ""))
        else:
            parts.append("varied: " + ", ".join(show(t) for t, _ in counts[:3]))
        if ev.previous_tokens:
            prev, prev_n = Counter(ev.previous_tokens).most_common(1)[0]
            if prev_n / len(ev.previous_tokens) >= MIN_SHARE_PREVIOUS:
                parts.append(f"often after {show(prev)}")
    if ev.promoted:
        parts.append("promotes " + ", ".join(show(t) for t in ev.promoted[:MAX_PROMOTED]))
    return " · ".join(parts) or "no examples"


def labels(evidence: list[FeatureEvidence]) -> list[str]:
    return [label(ev) for ev in evidence]
