"""Steering showcases: which features make striking steering demos, by a measured criterion.

A candidate is a feature f with a strength s (``add``: ``x += s · d_f`` at every position).
Over a fixed set of prompts, each prompt is continued twice with the steering page's sampling
settings and seed: unsteered (y0) and steered (ys). All rows of all candidates decode together
through the engine's decoding loop (`batching.DecodeBatch`, `batch_size` rows at a time), then
two teacher-forced forward passes over prompt + continuation read, at every generated position:

- ``effect``: how much steering raises the log-probability of the feature's own top-logit
  tokens T_f (its ``d_f · W_U`` top ``top_tokens``, facts.py, or the ones given):
  ``mean_t log P_s(T_f | p, ys<t) − mean_t log P_0(T_f | p, y0<t)`` in nats, where
  ``P(T) = Σ_{t ∈ T} p(t)``, P_s under steering along the steered text and P_0 unsteered along
  the unsteered text. Large when the feature's tokens become likely in what is generated.
- ``fluency_drop``: the unsteered text's mean token log-prob under the unsteered model minus
  the steered text's (nats per token). Near 0 when the steered text reads as naturally.
- ``distinct``: distinct tokens / tokens of the steered continuation (1.0: nothing repeats).

A candidate qualifies when, on average over the prompts, its fluency drop is at most
``max_fluency_drop``, its distinct fraction at least ``min_distinct`` and its effect at least
``min_effect``: steering that only makes the model babble or repeat one token is excluded
however much it raises its tokens. `pick_showcases` keeps each feature's best qualifying
strength and ranks features by effect; a showcase's prompt is the prompt where that candidate's
effect was largest among the prompts that pass the same floors on their own.

Cost: (candidates + 1) × prompts rows of ``max_new_tokens`` decode steps, plus two forward
passes over the steered rows and one over the unsteered ones. With the same seed, sampling
settings and prompt, the steering page regenerates the steered text that was scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .activations import pad_batch
from .batching import Job, RowRequest
from .facts import logit_vectors
from .hooks import intercept
from .interventions import Intervention, RowPlan, apply_plans, compile_plan
from .loading import AttachedSAE
from .scheduler import run_job

# Plain openings that leave the next words open, so a feature has room to show itself.
DEFAULT_PROMPTS = (
    "I think that",
    "The best thing about the city is",
    "Yesterday we went to",
)


@dataclass(frozen=True)
class ShowcaseSettings:
    """How candidates are continued and judged. Sampling defaults are the steering page's."""

    max_new_tokens: int = 24
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    top_tokens: int = 10  # |T_f| when the caller gives no target tokens
    max_fluency_drop: float = 1.0  # nats per token
    min_distinct: float = 0.6
    min_effect: float = 1.0  # nats: e^1 ≈ 2.7 times the probability on the feature's tokens
    batch_size: int = 64  # rows decoded or forwarded together

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.top_tokens < 1:
            raise ValueError("max_new_tokens, batch_size and top_tokens must be >= 1")


@dataclass(frozen=True)
class Candidate:
    feature: int
    strength: float  # raw, as on the steering page's URL (f=<sae>:<index>:<strength>)


@dataclass(frozen=True)
class PromptScore:
    effect: float
    fluency_drop: float
    distinct: float
    text: str  # the steered continuation (model output: untrusted)
    default_text: str  # the unsteered continuation of the same prompt


@dataclass
class CandidateScore:
    """A candidate's means over the prompts; `prompts[j]` is prompt j's own score."""

    feature: int
    strength: float
    effect: float
    fluency_drop: float
    distinct: float
    qualifies: bool
    best_prompt: int | None  # the passing prompt with the largest effect, if any
    prompts: list[PromptScore] = field(default_factory=list)


def passes(score: PromptScore | CandidateScore, s: ShowcaseSettings) -> bool:
    """Whether a score is above every floor of `s`."""
    return (
        score.fluency_drop <= s.max_fluency_drop
        and score.distinct >= s.min_distinct
        and score.effect >= s.min_effect
    )


def top_logit_tokens(att: AttachedSAE, features: Sequence[int], k: int) -> dict[int, list[int]]:
    """Each feature's top-`k` direct logit tokens (``d_f · W_U``, facts.py)."""
    logits = logit_vectors(att, list(features))  # [n, vocab]
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.tolist()
    return dict(zip(features, top, strict=True))


def score_candidates(
    att: AttachedSAE,
    candidates: Sequence[Candidate],
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    *,
    targets: Mapping[int, Sequence[int]] | None = None,
    settings: ShowcaseSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CandidateScore]:
    """Score every candidate over `prompts` (see the module docstring), in candidate order.

    `targets[f]` are feature f's tokens (e.g. its stored top logit tokens); features missing
    from it get their top ``settings.top_tokens`` logit tokens. `progress(done, total)` is
    called after each batch of rows. No candidates give []. Raises ValueError for no prompts,
    an empty prompt, an unknown feature index (naming d_sae), a feature with no target tokens,
    or a prompt + max_new_tokens beyond the model's context.
    """
    s = settings or ShowcaseSettings()
    lm = att.lm
    if not prompts or any(not p.strip() for p in prompts):
        raise ValueError("showcases need at least one prompt, none of them empty")
    features = sorted({att.check_feature(c.feature) for c in candidates})
    if not features:
        return []
    tokens = _targets(att, features, targets or {}, s.top_tokens)
    prompt_ids = [lm.encode(p, prepend_bos=att.preprocessing.prepend_bos).tolist() for p in prompts]
    if max(map(len, prompt_ids)) + s.max_new_tokens > lm.n_ctx:
        raise ValueError(f"a prompt + max_new_tokens exceeds the model's {lm.n_ctx} tokens")
    plans = [compile_plan(att, [Intervention(c.feature, c.strength, "add")]) for c in candidates]
    n_p = len(prompts)
    # Rows: the unsteered continuation of each prompt, then each candidate on each prompt.
    rows = [
        (prompt_ids[j], None if i is None or plans[i].is_noop else plans[i])
        for i, j in [(None, j) for j in range(n_p)]
        + [(i, j) for i in range(len(candidates)) for j in range(n_p)]
    ]
    report = _Progress(2 * len(rows), progress)
    generated = []
    for chunk in _chunks(rows, s.batch_size):
        generated += _decode(att, chunk, s)
        report(len(chunk))
    fluency, target_lp = _read_rows(
        att, rows, generated, _target_index(tokens, features), s, report
    )

    col = {f: n for n, f in enumerate(features)}
    results = []
    for i, c in enumerate(candidates):
        per = []
        for j in range(n_p):
            r = n_p + i * n_p + j  # this candidate's row for prompt j
            ys = generated[r]
            per.append(
                PromptScore(
                    effect=float(target_lp[r][col[c.feature]] - target_lp[j][col[c.feature]]),
                    fluency_drop=fluency[j] - fluency[r],
                    distinct=len(set(ys)) / len(ys),
                    text=lm.decode(ys),
                    default_text=lm.decode(generated[j]),
                )
            )
        results.append(_candidate_score(c, per, s))
    return results


def pick_showcases(scores: Sequence[CandidateScore], n: int) -> list[CandidateScore]:
    """Up to `n` showcases: each feature's qualifying candidate of largest effect, features
    by that effect, largest first."""
    best: dict[int, CandidateScore] = {}
    for sc in scores:
        if sc.qualifies and (sc.feature not in best or sc.effect > best[sc.feature].effect):
            best[sc.feature] = sc
    return sorted(best.values(), key=lambda sc: -sc.effect)[:n]


def _candidate_score(c: Candidate, per: list[PromptScore], s: ShowcaseSettings) -> CandidateScore:
    n = len(per)
    score = CandidateScore(
        feature=c.feature,
        strength=c.strength,
        effect=sum(p.effect for p in per) / n,
        fluency_drop=sum(p.fluency_drop for p in per) / n,
        distinct=sum(p.distinct for p in per) / n,
        qualifies=False,
        best_prompt=None,
        prompts=per,
    )
    passing = [j for j, p in enumerate(per) if passes(p, s)]
    if passing:
        score.best_prompt = max(passing, key=lambda j: per[j].effect)
    score.qualifies = score.best_prompt is not None and passes(score, s)
    return score


class _Progress:
    def __init__(self, total: int, fn: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self.fn = total, 0, fn

    def __call__(self, n: int) -> None:
        self.done += n
        if self.fn is not None:
            self.fn(self.done, self.total)


def _targets(
    att: AttachedSAE, features: Sequence[int], given: Mapping[int, Sequence[int]], k: int
) -> dict[int, list[int]]:
    """The target tokens of every feature: the given ones, else its top-`k` logit tokens."""
    missing = [f for f in features if f not in given]
    tokens = {f: list(given[f]) for f in features if f in given}
    if missing:
        tokens.update(top_logit_tokens(att, missing, k))
    if any(not tokens[f] for f in features):
        raise ValueError("every candidate feature needs at least one target token")
    return tokens


def _read_rows(
    att: AttachedSAE,
    rows: Sequence[tuple[list[int], RowPlan | None]],
    generated: Sequence[list[int]],
    t_index: Int[Tensor, "features k"],
    s: ShowcaseSettings,
    report: Callable[[int], None],
) -> tuple[list[float], list[Tensor]]:
    """Per row: its text's mean log-prob under the unsteered model, and its mean log P(T_f)
    for every feature under its own plan (P_s for a steered row, P_0 for an unsteered one)."""
    fluency: list[float] = []
    target_lp: list[Tensor] = []
    for chunk in _chunks(list(zip(rows, generated, strict=True)), s.batch_size):
        seqs = [(ids, gen) for (ids, _), gen in chunk]
        plans = [plan for (_, plan), _ in chunk]
        clean_flu, clean_t = _read(att, seqs, None, t_index)
        steered_t = _read(att, seqs, plans, t_index)[1] if any(plans) else clean_t
        fluency += clean_flu.tolist()
        target_lp += list(steered_t)  # rows without a plan read the same as clean ones
        report(len(chunk))
    return fluency, target_lp


def _chunks(items: list, size: int) -> list[list]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def _decode(
    att: AttachedSAE, reqs: Sequence[tuple[list[int], RowPlan | None]], s: ShowcaseSettings
) -> list[list[int]]:
    """Generated token ids of each (prompt ids, plan) row, all rows decoding as one batch."""
    rows = [
        RowRequest(
            label=str(k),
            prompt_ids=ids,
            plan=plan,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=s.seed,
            max_new_tokens=s.max_new_tokens,
        )
        for k, (ids, plan) in enumerate(reqs)
    ]
    out = run_job(att.lm, Job(rows=rows, finish=lambda outputs, _cancelled: outputs))
    return [out[str(k)][0] for k in range(len(rows))]


def _target_index(
    tokens: Mapping[int, Sequence[int]], features: Sequence[int]
) -> Int[Tensor, "features k"]:
    k = max(len(tokens[f]) for f in features)
    index = torch.full((len(features), k), -1, dtype=torch.long)  # [features, k]
    for n, f in enumerate(features):
        index[n, : len(tokens[f])] = torch.tensor(list(tokens[f]), dtype=torch.long)
    return index


def _read(
    att: AttachedSAE,
    seqs: Sequence[tuple[list[int], list[int]]],
    plans: Sequence[RowPlan | None] | None,
    t_index: Int[Tensor, "features k"],
) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch features"]]:
    """One forward pass over prompt + continuation rows (steered by `plans` when given).
    Returns each row's mean log-prob of its own continuation tokens and, per feature, its
    mean log P(T_f) over the positions that predict them."""
    ids, mask = pad_batch(att, [torch.tensor(p + g, dtype=torch.long) for p, g in seqs])
    t_index = t_index.to(ids.device)
    gen = torch.zeros_like(mask)  # [batch, pos] True where position t predicts a generated token
    for r, (p, g) in enumerate(seqs):
        gen[r, len(p) - 1 : len(p) - 1 + len(g)] = True
    with torch.inference_mode():
        if plans is None:
            logits = _logits(att, ids, mask)  # [batch, pos, vocab]
        else:
            with intercept(att.lm.model, att.hook_name, lambda x: apply_plans(x, plans, mask)):
                logits = _logits(att, ids, mask)
        return _position_means(logits, ids, gen, t_index)


def _logits(
    att: AttachedSAE, ids: Int[Tensor, "batch pos"], mask: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos vocab"]:
    return att.lm.model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits


def _position_means(
    logits: Float[Tensor, "batch pos vocab"],
    ids: Int[Tensor, "batch pos"],
    gen: Bool[Tensor, "batch pos"],
    t_index: Int[Tensor, "features k"],
) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch features"]]:
    lp = torch.log_softmax(logits.float(), dim=-1)  # [batch, pos, vocab]
    nxt = torch.cat(
        [ids[:, 1:], ids[:, -1:]], dim=1
    )  # [batch, pos] the token each position predicts
    own = lp.gather(-1, nxt[..., None]).squeeze(-1)  # [batch, pos]
    b, pos, _ = lp.shape
    f, k = t_index.shape
    picked = lp.gather(-1, t_index.clamp_min(0).reshape(1, 1, f * k).expand(b, pos, f * k))
    picked = picked.reshape(b, pos, f, k).masked_fill(t_index < 0, float("-inf"))
    target = torch.logsumexp(picked, dim=-1)  # [batch, pos, features] log P(T_f)
    w = gen.float()  # [batch, pos]
    n = w.sum(1).clamp_min(1.0)  # [batch]
    fluency = (own * w).sum(1) / n  # [batch]
    means = (target * w[..., None]).sum(1) / n[:, None]  # [batch, features]
    return fluency.cpu(), means.cpu()
