"""Feature importance under ablation: how much worse the model predicts the next token when a
feature is taken out, on the feature's own activating contexts.

For feature f with decoder row d_f, at the SAE's hook every (non-BOS, non-padding) position's
activation x becomes ``x − f(x)·d_f + f'(x)·d_f`` where f' is

- ``zero``:     0;
- ``mean``:     the feature's mean over all tokens (density × mean non-zero activation);
- ``resample``: a value drawn per position from the feature's activation distribution
                (zero with probability 1 − density, else from its histogram of non-zero values).

Everything else the SAE does not reconstruct (its error term) is kept, because only the
feature's own share is swapped. This is the ``ablate`` intervention of interventions.py,
applied per batch row through `apply_plans`, so steering and importance share one definition.

Reported per feature (``FeatureImportance``):
- ``loss_delta[method]``: mean over every next-token prediction in its contexts of
  CE(ablated) − CE(clean), in nats; positive means the feature helps prediction;
- ``up`` / ``down``: the next tokens whose probability rises / falls most under zero ablation,
  averaged over the same predictions (``down`` are the tokens the feature supports).

Rows of the batch are (feature, context) pairs, so several features share one forward pass;
each method costs one more forward pass of the same batch. A feature whose activation is zero
everywhere in its contexts gets a zero-ablation delta of exactly 0.0 (x is unchanged bit for
bit, and the clean and ablated passes run on the same batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .activations import pad_batch
from .hooks import intercept
from .interventions import (
    ABLATIONS,
    FeatureStats,
    Intervention,
    RowPlan,
    apply_plans,
    compile_plan,
)
from .loading import AttachedSAE

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32  # (feature, context) rows per forward pass
DEFAULT_TOP_TOKENS = 10
# Example windows per feature: enough that the mean loss change is stable to a few percent on
# the demo, few enough that one feature is one batch (a forward pass per method).
DEFAULT_MAX_CONTEXTS = 32
POOL_SIZE = 1024  # resample draws come from this many values of the feature's distribution


@dataclass
class FeatureImportance:
    """One feature's result. Token lists are (token id, mean change in probability)."""

    feature: int
    n_contexts: int
    n_predictions: int  # next-token predictions averaged over
    loss_clean: float  # mean CE of those predictions without ablation (nats)
    loss_delta: dict[str, float] = field(default_factory=dict)  # method -> mean ΔCE
    up: list[tuple[int, float]] = field(default_factory=list)
    down: list[tuple[int, float]] = field(default_factory=list)


def activation_pool(
    *,
    density: float,
    hist_edges: Sequence[float],
    hist_counts: Sequence[int],
    size: int = POOL_SIZE,
    seed: int = 0,
) -> list[float]:
    """`size` values standing for the feature's activation over all tokens: round(density·size)
    drawn from the histogram of its non-zero values (uniform within a bin), the rest 0.0.

    Raises ValueError when the histogram's edges and counts do not match.
    """
    if len(hist_counts) and len(hist_edges) != len(hist_counts) + 1:
        raise ValueError(f"histogram has {len(hist_edges)} edges for {len(hist_counts)} counts")
    counts = torch.tensor([float(c) for c in hist_counts], dtype=torch.float64)  # [bins]
    n_live = round(min(max(density, 0.0), 1.0) * size)
    if n_live == 0 or counts.sum() <= 0:
        return [0.0] * size
    gen = torch.Generator().manual_seed(seed)
    edges = torch.tensor([float(e) for e in hist_edges], dtype=torch.float64)  # [bins + 1]
    bins = torch.multinomial(counts, n_live, replacement=True, generator=gen)  # [n_live]
    u = torch.rand(n_live, generator=gen, dtype=torch.float64)  # [n_live]
    lo, hi = edges[bins], edges[bins + 1]  # [n_live] each
    hi = torch.where(torch.isfinite(hi), hi, lo)  # an open last bin (…, inf) gives its floor
    values = lo + u * (hi - lo)  # [n_live]
    return values.tolist() + [0.0] * (size - n_live)


def choose_contexts(
    top: Sequence[Sequence[int]],
    quantile_bins: Sequence[Sequence[Sequence[int]]],
    n: int = DEFAULT_MAX_CONTEXTS,
) -> list[list[int]]:
    """Up to `n` windows of a feature: half from its top examples (strongest first), half from
    its quantile samples taken round-robin from the highest bin down, so the loss is measured
    on weak activations too; a side with too few fills the other's share."""
    spread: list[Sequence[int]] = []
    bins = [list(b) for b in reversed(quantile_bins)]
    while any(bins):
        for b in bins:
            if b:
                spread.append(b.pop(0))
    n_top = min(len(top), max(n - len(spread), (n + 1) // 2))
    return [list(c) for c in [*top[:n_top], *spread[: n - n_top]]]


def _next_token_ce(
    logits: Float[Tensor, "batch pos vocab"], ids: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """CE of predicting ids[:, t+1] from position t (fp32)."""
    z = logits[:, :-1].float()  # [batch, pos-1, vocab]
    # logsumexp − target logit: the same value as log_softmax + gather, without writing a
    # second [batch, pos, vocab] tensor (this is a third of the time on small models).
    return torch.logsumexp(z, dim=-1) - z.gather(-1, ids[:, 1:, None]).squeeze(-1)  # [batch, pos-1]


def _forward_logits(att: AttachedSAE, ids: Tensor, mask: Tensor) -> Tensor:
    out = att.lm.model(input_ids=ids, attention_mask=mask.long(), use_cache=False)
    return out.logits  # [batch, pos, vocab]


def feature_importance(
    att: AttachedSAE,
    contexts: Mapping[int, Sequence[Sequence[int]]],
    *,
    stats: Mapping[int, FeatureStats] | None = None,
    methods: Sequence[str] = ABLATIONS,
    top_tokens: int = DEFAULT_TOP_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    progress: Callable[[float, int], None] | None = None,
) -> list[FeatureImportance]:
    """Loss increase under ablation for every feature in `contexts` (feature -> token-id lists,
    e.g. its stored example windows, BOS first when the SAE was trained with it).

    ``mean`` needs ``stats[f].mean`` and ``resample`` needs ``stats[f].samples`` (see
    `activation_pool`). `progress(done_rows, total_rows)` is called after every forward
    pass (a batch's rows count fractionally: its clean pass, then one pass per method).
    Returns results in the order of `contexts`; a feature with no contexts of 2+ tokens gets
    n_predictions 0 and no deltas. Raises ValueError for an unknown method or feature index
    (naming d_sae), a missing stat, or batch_size < 1.
    """
    for m in methods:
        if m not in ABLATIONS:
            raise ValueError(f"unknown ablation {m!r}; use one of {list(ABLATIONS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stats = stats or {}
    features = [att.check_feature(int(f)) for f in contexts]
    lm, device = att.lm, att.lm.device
    # Compile every (feature, method) plan first: a missing stat fails before any forward pass.
    plans = {
        (f, m): compile_plan(att, [Intervention(f, 0.0, "ablate", m)], stats=stats, seed=seed + f)
        for f in features
        for m in methods
    }
    rows = [
        (f, torch.tensor(list(c), dtype=torch.long, device=device))
        for f in features
        for c in contexts[f]
        if len(c) >= 2
    ]
    sums = {
        f: _Sums(torch.zeros(lm.vocab_size, dtype=torch.float64, device=device)) for f in features
    }
    want_tokens = "zero" in methods and top_tokens > 0

    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            passes = len(methods) + 1  # clean + one per method: progress after each

            def report(k: int, start: int = start, n: int = len(chunk), p: int = passes) -> None:
                if progress is not None:
                    progress(start + n * k / p, len(rows))

            _add_batch(att, chunk, plans, methods, sums, want_tokens=want_tokens, report=report)

    return [
        _importance(f, sums[f], methods, top_tokens=top_tokens if want_tokens else 0)
        for f in features
    ]


@dataclass
class _Sums:
    """One feature's running sums over the batches its contexts fall in."""

    dp: Float[Tensor, " vocab"]  # float64: summed change in probability under zero ablation
    n: int = 0  # next-token predictions
    ctx: int = 0
    clean: float = 0.0  # summed clean CE
    delta: dict[str, float] = field(default_factory=dict)  # method -> summed ΔCE


def _add_batch(
    att: AttachedSAE,
    chunk: Sequence[tuple[int, Int[Tensor, " _pos"]]],  # contexts differ in length
    plans: Mapping[tuple[int, str], RowPlan],
    methods: Sequence[str],
    sums: Mapping[int, _Sums],
    *,
    want_tokens: bool,
    report: Callable[[int], None],
) -> None:
    """One batch of (feature, context) rows: a clean pass, then one ablated pass per method,
    added to each row's feature in `sums`; `report(k)` after the k-th pass."""
    lm = att.lm
    ids, mask = pad_batch(att, [r for _, r in chunk])  # [b, pos]
    eligible = mask.clone()  # [b, pos] ablate real tokens...
    if att.preprocessing.prepend_bos:
        eligible[:, 0] &= ids[:, 0] != lm.bos_token_id  # ...but BOS, as indexing does
    valid = (mask[:, :-1] & mask[:, 1:]).float()  # [b, pos-1] real -> real predictions
    clean_logits = _forward_logits(att, ids, mask)  # [b, pos, vocab]
    clean_ce = _next_token_ce(clean_logits, ids) * valid  # [b, pos-1]
    report(1)
    for i, (f, _) in enumerate(chunk):
        s = sums[f]
        s.n += int(valid[i].sum())
        s.ctx += 1
        s.clean += float(clean_ce[i].sum())
    for k, m in enumerate(methods, start=2):
        row_plans = [plans[(f, m)] for f, _ in chunk]
        with intercept(
            lm.model,
            att.hook_name,
            lambda x, rp=row_plans, e=eligible: apply_plans(x, rp, e),
        ):
            logits = _forward_logits(att, ids, mask)  # [b, pos, vocab]
        delta = (_next_token_ce(logits, ids) * valid - clean_ce).sum(-1)  # [b]
        for i, (f, _) in enumerate(chunk):
            sums[f].delta[m] = sums[f].delta.get(m, 0.0) + float(delta[i])
        if m == "zero" and want_tokens:
            dp = torch.softmax(logits[:, :-1].float(), -1) - torch.softmax(
                clean_logits[:, :-1].float(), -1
            )  # [b, pos-1, vocab]
            dp = (dp * valid[..., None]).sum(1)  # [b, vocab]
            for i, (f, _) in enumerate(chunk):
                sums[f].dp += dp[i].double()
        report(k)


def _importance(f: int, s: _Sums, methods: Sequence[str], *, top_tokens: int) -> FeatureImportance:
    """Means over the feature's predictions; moved tokens only when `top_tokens` > 0."""
    n = s.n
    res = FeatureImportance(
        feature=f, n_contexts=s.ctx, n_predictions=n, loss_clean=s.clean / n if n else 0.0
    )
    if n:
        res.loss_delta = {m: s.delta.get(m, 0.0) / n for m in methods}
        if top_tokens:
            res.up, res.down = _moved_tokens(s.dp / n, top_tokens)
    return res


def _moved_tokens(
    dp: Float[Tensor, " vocab"], k: int
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Top-k rises (dp > 0) and falls (dp < 0), largest change first."""
    k = min(k, dp.shape[0])
    up_v, up_i = dp.topk(k)  # [k]
    down_v, down_i = (-dp).topk(k)  # [k]
    up = [(int(i), float(v)) for v, i in zip(up_v.tolist(), up_i.tolist(), strict=True) if v > 0]
    down = [
        (int(i), -float(v)) for v, i in zip(down_v.tolist(), down_i.tolist(), strict=True) if v > 0
    ]
    return up, down
