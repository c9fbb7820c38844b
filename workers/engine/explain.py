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

Two kinds of feature are named for what they are, not for a token (`flags`): a dense one,
firing on more than a tenth of all tokens, and one whose top examples mostly peak at the
start of a document (the first token after BOS or an end-of-text marker). Their peak token is
an accident of the corpus, so the label says "dense" or "fires at document start" instead:

    >>> label(FeatureEvidence(peak_tokens=[" William"] * 4, starts=[True, True, True, False],
    ...                       promoted=[" the"], density=0.28))
    'dense: fires on 28% of tokens · fires at document start · promotes " the"'
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

MIN_SHARE_ALSO = 0.2  # another peak token is named when it has this share of the peaks
MIN_SHARE_MAIN = 0.3  # below this the peaks are "varied"
MIN_SHARE_PREVIOUS = 0.5
MAX_PROMOTED = 3
MAX_TOKEN_CHARS = 20
DENSE_DENSITY = 0.1  # above this share of tokens a feature is "dense"
MIN_SHARE_START = 0.5  # "fires at document start" when this share of top peaks sit there
# BOS / end-of-text markers of the tokenizers we serve (<|endoftext|>, <s>, <bos>, ...).
SPECIAL_TOKEN = re.compile(r"^(<\|[^|<>]*\|>|</?(s|bos|eos)>)$", re.IGNORECASE)

DENSE = "dense"
DOCUMENT_START = "document start"
# Each flag in words, for labels and for the pages' hover text.
FLAG_WORDS = {
    DENSE: "fires on more than 10% of tokens, so its top token says little",
    DOCUMENT_START: "most top examples peak on the first token of a document (right after "
    "BOS or an end-of-text marker), so its top token says little",
}


@dataclass
class FeatureEvidence:
    peak_tokens: list[str]  # the token at the maximum of each top example, best first
    previous_tokens: list[str] = field(default_factory=list)  # the token before each peak
    promoted: list[str] = field(default_factory=list)  # top logit tokens, strongest first
    dead: bool = False
    starts: list[bool] = field(default_factory=list)  # each peak at document start?
    density: float | None = None  # share of tokens it fires on


def at_document_start(*, previous: str | None, offset: int) -> bool:
    """Whether a peak token is the first of a document: right after a BOS or end-of-text
    marker (`previous`, the token before it in its window), or the first token of a window
    (`previous` None) that starts the document (`offset`, the document offset of the window's
    first non-BOS token, is 0).

    >>> at_document_start(previous="<|endoftext|>", offset=40)
    True
    >>> at_document_start(previous=None, offset=0), at_document_start(previous="The", offset=0)
    (True, False)
    """
    if previous is not None:
        return bool(SPECIAL_TOKEN.match(previous))
    return offset == 0


def flags(*, density: float | None, starts: list[bool]) -> list[str]:
    """DENSE and/or DOCUMENT_START (module docstring), in that order; [] for neither."""
    out = []
    if density is not None and density > DENSE_DENSITY:
        out.append(DENSE)
    if starts and sum(starts) / len(starts) >= MIN_SHARE_START:
        out.append(DOCUMENT_START)
    return out


def percent(density: float) -> str:
    """A density as every page writes it: a percentage to 3 significant digits, in plain
    decimals down to 0.0001% and "<0.0001%" below (no exponents).

    >>> percent(0.2834), percent(0.00012345), percent(0.0), percent(3e-9)
    ('28.3%', '0.0123%', '0%', '<0.0001%')
    """
    value = density * 100
    if value == 0:
        return "0%"
    if value < 1e-4:
        return "<0.0001%"
    return f"{value:.3g}%"


def show(token: str) -> str:
    """A token as a reader sees it in a label: quoted, newlines and tabs visible, clipped."""
    t = token.replace("\n", "⏎").replace("\t", "⇥").replace("\r", "␍")
    if len(t) > MAX_TOKEN_CHARS:
        t = t[: MAX_TOKEN_CHARS - 1] + "…"
    return f'"{t}"'


def _peak_parts(ev: FeatureEvidence) -> list[str]:
    """The tokens it fires on most, and the token before them when one dominates."""
    counts = Counter(ev.peak_tokens).most_common()
    n = len(ev.peak_tokens)
    top, top_n = counts[0]
    if top_n / n >= MIN_SHARE_MAIN:
        also = [t for t, c in counts[1:3] if c / n >= MIN_SHARE_ALSO]
        named = ", ".join(show(t) for t in also)
        parts = [show(top) + (f" (also {named})" if also else "")]
    else:
        parts = ["varied: " + ", ".join(show(t) for t, _ in counts[:3])]
    if ev.previous_tokens:
        prev, prev_n = Counter(ev.previous_tokens).most_common(1)[0]
        if prev_n / len(ev.previous_tokens) >= MIN_SHARE_PREVIOUS:
            parts.append(f"often after {show(prev)}")
    return parts


def label(ev: FeatureEvidence) -> str:
    """The label of one feature (see the module docstring)."""
    if ev.dead:
        return "dead: never fired on the indexed corpus"
    parts = []
    found = flags(density=ev.density, starts=ev.starts)
    if DENSE in found:
        parts.append(f"dense: fires on {percent(ev.density or 0.0)} of tokens")
    if DOCUMENT_START in found:
        parts.append("fires at document start")
    if not found and ev.peak_tokens:  # a flagged feature's peak token is not what it means
        parts.extend(_peak_parts(ev))
    if ev.promoted:
        parts.append("promotes " + ", ".join(show(t) for t in ev.promoted[:MAX_PROMOTED]))
    return " · ".join(parts) or "no examples"


def labels(evidence: list[FeatureEvidence]) -> list[str]:
    return [label(ev) for ev in evidence]
