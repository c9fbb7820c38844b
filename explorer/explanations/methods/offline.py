"""The offline method's scorer: a detection proxy that needs no network and no model.

What it measures, exactly: a rule-based judge reads the quoted tokens of the explanation
(`"of"`, `" the"`, as the offline labels write them and as people may) and predicts "fires"
for a context when the token at the judged position is one of them. The judged position is
the maximum of an activating context (this feature's indexed top/quantile examples) and, for a
non-activating context, the maximum of another feature's indexed example (a token the corpus
really contains, picked without regard to this feature). The score is the balanced accuracy
((recall on activating + rejection rate on non-activating) / 2; 0.5 = chance).

So it is "do the label's quoted tokens pick out where the feature peaks, and nowhere else",
which suits token-like features and offline labels. It cannot read prose: an explanation
without quoted tokens is not scored (UnscorableError), never given a guessed number. Its bias:
a non-activating context is presumed not to make this feature fire; the indexed examples
store only their own feature's values, so a context where this feature also fires counts as
a false positive (rare for a sparse feature: at most about its density).
"""

from __future__ import annotations

import re

from explorer.explanations.methods import Context, Contexts, Score, detection_score
from workers.engine.explain import show as engine_show  # shared contract: no torch

METHOD = "detection:offline"
QUOTED = re.compile(r'"([^"]{1,40})"')
# Parts of an offline label that name context or effects, not the tokens it fires on.
NOT_PEAK_PARTS = ("often after", "promotes")


class UnscorableError(ValueError):
    """The explanation gives the proxy nothing to test (no quoted tokens, or no contexts)."""


def show(token: str) -> str:
    """A token as labels quote it (same transform as the offline explainer)."""
    return engine_show(token)[1:-1]


def quoted_tokens(explanation: str) -> set[str]:
    """The quoted tokens an explanation says the feature fires on.

    >>> sorted(quoted_tokens('"of" (also " in") · often after " one" · promotes " the"'))
    [' in', 'of']
    """
    parts = [p for p in explanation.split(" · ") if not p.strip().startswith(NOT_PEAK_PARTS)]
    return {m for p in parts for m in QUOTED.findall(p)}


def score(*, explanation: str, contexts: Contexts) -> Score:
    """The proxy detection score (module docstring). Raises UnscorableError."""
    wanted = quoted_tokens(explanation)
    if not wanted:
        raise UnscorableError(
            'the offline proxy needs quoted tokens in the explanation (e.g. "of")'
        )
    if not contexts.activating or not contexts.non_activating:
        raise UnscorableError(
            "too few indexed contexts to score (needs activating and non-activating ones)"
        )

    def fires(ctx: Context) -> bool:
        return show(ctx.tokens[ctx.position]) in wanted

    return detection_score(contexts, fires=fires, method=METHOD)
