"""Token sampling: the next token of every row from its logits, and what the page shows of it.

Each row samples with its own temperature, top-p and `torch.Generator`, so a row's token is
the one it would get decoding alone (`sample_tokens` equals `sample_token` row by row).
`token_probabilities` reports the model's own distribution at the step (before temperature
and top-p), rounded for display.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

# The likeliest tokens kept per generated token (the steering page shows them on hover), and
# the decimals their probabilities keep.
ALTERNATIVES = 5
PROB_DECIMALS = 4


def sample_token(
    logits: Float[Tensor, " vocab"], temperature: float, top_p: float, generator: torch.Generator
) -> int:
    """Greedy when temperature == 0, else temperature + nucleus (top-p) sampling."""
    if temperature == 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [vocab]
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)  # [vocab]
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        drop = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= top_p  # [vocab]
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)  # [vocab]
    return int(torch.multinomial(probs, 1, generator=generator))


def sample_tokens(
    logits: Float[Tensor, "batch vocab"],
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator],
) -> list[int]:
    """:func:`sample_token` for every row at once: one softmax (and one sort for the top-p
    rows) over the batch instead of one per row; each row still draws from its own generator,
    so a row's token is the one :func:`sample_token` gives it alone."""
    out = logits.argmax(dim=-1).tolist()  # [batch]; greedy rows keep theirs
    rows = [i for i, t in enumerate(temperatures) if t != 0.0]
    if not rows:
        return out
    idx = torch.tensor(rows, device=logits.device)
    temps = torch.tensor([temperatures[i] for i in rows], device=logits.device)  # [n]
    probs = torch.softmax(logits.index_select(0, idx).float() / temps[:, None], dim=-1)
    nucleus = [j for j, i in enumerate(rows) if top_ps[i] < 1.0]
    if nucleus:
        sub = torch.tensor(nucleus, device=logits.device)
        top_p = torch.tensor([top_ps[rows[j]] for j in nucleus], device=logits.device)
        sorted_p, order = torch.sort(probs.index_select(0, sub), dim=-1, descending=True)
        drop = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= top_p[:, None]  # [m, vocab]
        sorted_p[drop] = 0.0
        probs[sub] = torch.zeros_like(sorted_p).scatter_(1, order, sorted_p)
    for j, i in enumerate(rows):
        out[i] = int(torch.multinomial(probs[j], 1, generator=generators[i]))
    return out


def token_probabilities(
    logits: Float[Tensor, "batch vocab"],
    tokens: Sequence[int],
    k: int = ALTERNATIVES,
) -> tuple[list[float], list[list[tuple[int, float]]]]:
    """Each row's probability of its chosen token and its `k` likeliest tokens with theirs,
    under the model's own distribution at this step (the softmax of the logits the token was
    drawn from, steering and logit bias included; before temperature and top-p), rounded to
    PROB_DECIMALS (they are shown, never computed with). One softmax and one topk for the
    whole batch, rounded there too: per-element Python work would cost more than both."""
    # softmax then topk: on CPU a softmax costs a third of a logsumexp over the same logits
    probs = torch.softmax(logits, dim=-1)  # [batch, vocab]
    top_p, top_i = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)  # [batch, k]
    chosen = probs.gather(1, torch.tensor(tokens, device=probs.device)[:, None])  # [batch, 1]
    top_p = torch.round(top_p.double(), decimals=PROB_DECIMALS)
    chosen = torch.round(chosen[:, 0].double(), decimals=PROB_DECIMALS)
    return chosen.tolist(), [
        list(zip(i, p, strict=True)) for i, p in zip(top_i.tolist(), top_p.tolist(), strict=True)
    ]
