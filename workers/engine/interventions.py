"""Steering interventions at an SAE's hook: the math that carries out a spec (specs.py).

An `Intervention` names one SAE feature (or a vector), a strength and a mode, whose compiler
is found through a registry:

- ``add``:    ``x += s · d_f``                       (d_f = the feature's decoder row)
- ``clamp``:  ``x += (c − f(x)) · d_f``              (c = strength; f from the SAE's own encode,
                                                     so the SAE's error term is kept)
- ``ablate``: clamp to 0 (``zero``), to the feature's mean (``mean``) or to a value drawn from
              its activation samples (``resample``); mean/resample need `FeatureStats`.
- ``vector``: ``x += s · v`` (v = the intervention's own `values`, e.g. a CAA vector)
- ``logit``:  add ``s · (d_f · W_U)`` to the logits, no hook at all. The final norm is handled
              exactly as the direct logit effects in facts.py do it (its linear part only: centred
              for LayerNorm families, times gamma; its per-position scale and bias are skipped),
              so a feature's listed top tokens are the ones its logit bias pushes up, and
              ``bias / s`` equals its ``logit_effects`` row.

Positions: an intervention acts where a row's residual positions are eligible: ``all``,
``prompt`` (the prompt's tokens only: during prefill) or ``generated`` (positions whose input
token was generated; the first generated token is predicted from the last prompt position, so
``generated`` steering starts changing the text from the second new token), or ``assistant``
(a chat's assistant turns: the prompt positions in the row plan's `prompt_mask`, and every
generated position). The logit bias follows the same rule applied to the position whose
logits are sampled.

`compile_plan` turns a spec into a `RowPlan` (tensors on the model's device); `apply_plans`
applies one `RowPlan` per batch row inside a hook: all adds as one `[batch, pos, d]` tensor
(zero rows for rows that add nothing), then each clamping row on its own. A row's residual is
only ever written from its own plan, so no steering leaks across rows. When a row both adds
and clamps, the clamp is computed on the residual after the adds, so the clamp wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from workers.engine.facts import logit_vectors
from workers.engine.specs import ABLATIONS, MODES, POSITIONS, Intervention, SteerSpec

__all__ = [
    "ABLATIONS",
    "POSITIONS",
    "FeatureStats",
    "Intervention",
    "RowPlan",
    "SteerSpec",
    "add_delta",
    "apply_logit_bias",
    "apply_plans",
    "compile_plan",
    "register_intervention",
]

Positions = Literal["all", "prompt", "generated", "assistant"]
Kind = Literal["prompt", "generated"]  # which kind of forward pass: prefill or decode


@runtime_checkable
class SteeringSAE(Protocol):
    """What the math needs of an attached SAE (loading.AttachedSAE satisfies it)."""

    hook_name: str

    def encode(self, acts: Tensor) -> Tensor: ...

    @property
    def decoder_directions(self) -> Tensor: ...


# --------------------------------------------------------------------------- registry

# mode name -> compiler: fn(intervention, ctx, plan) adds the intervention's effect to the plan.
InterventionFn = Callable[["Intervention", "CompileContext", "RowPlan"], None]
_REGISTRY: dict[str, InterventionFn] = {}


def register_intervention(name: str, fn: InterventionFn) -> None:
    """Register the compiler of a mode named in specs.MODES. Raises ValueError if `name` is
    already registered or is not a mode of the contract."""
    if name in _REGISTRY:
        raise ValueError(f"intervention mode {name!r} is already registered")
    if name not in MODES:
        raise ValueError(f"mode {name!r} is not in specs.MODES {list(MODES)}")
    _REGISTRY[name] = fn


def registered_modes() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature activation statistics for mean/resample ablation (from the index)."""

    mean: float | None = None
    samples: Sequence[float] = ()


# --------------------------------------------------------------------------- compiled plans


@dataclass
class RowPlan:
    """One row's interventions as tensors. Empty parts are None/empty and cost nothing."""

    positions: str
    hook_name: str | None = None
    encode: Callable[[Tensor], Tensor] | None = None
    add: Float[Tensor, " d"] | None = None
    clamp_features: list[int] = field(default_factory=list)
    clamp_values: list[float] = field(default_factory=list)  # NaN = resample from the pool
    resample_pools: dict[int, Tensor] = field(default_factory=dict)  # clamp slot -> samples
    clamp_directions: Float[Tensor, "k d"] | None = None
    logit_bias: Float[Tensor, " vocab"] | None = None
    generator: torch.Generator | None = None  # for resample draws only
    # positions "assistant": which of the row's prompt positions are the assistant's (prefill)
    prompt_mask: Bool[Tensor, " prompt"] | None = None

    @property
    def needs_hook(self) -> bool:
        return self.add is not None or bool(self.clamp_features)

    @property
    def is_noop(self) -> bool:
        return not self.needs_hook and self.logit_bias is None

    def acts_on(self, kind: Kind) -> bool:
        """Whether the plan acts on some positions of a forward pass of this kind (for
        ``assistant`` prefill, only where `prompt_mask` says)."""
        return self.positions in ("all", "assistant") or self.positions == kind


@dataclass
class CompileContext:
    directions: Float[Tensor, "d_sae d"]
    logit_direction: Callable[[int], Tensor] | None  # feature -> [vocab] logit effect
    stats: Mapping[int, FeatureStats]


def _add(iv: Intervention, ctx: CompileContext, plan: RowPlan) -> None:
    if iv.strength == 0.0:
        return  # exact no-op: zero strength must reproduce the unsteered text bit for bit
    d_f = ctx.directions[iv.feature]  # [d]
    plan.add = iv.strength * d_f if plan.add is None else plan.add + iv.strength * d_f


def _clamp_to(plan: RowPlan, feature: int, value: float) -> None:
    plan.clamp_features.append(feature)
    plan.clamp_values.append(value)


def _clamp(iv: Intervention, ctx: CompileContext, plan: RowPlan) -> None:
    _clamp_to(plan, iv.feature, iv.strength)


def _ablate(iv: Intervention, ctx: CompileContext, plan: RowPlan) -> None:
    if iv.ablation == "zero":
        return _clamp_to(plan, iv.feature, 0.0)
    st = ctx.stats.get(iv.feature)
    if iv.ablation == "mean":
        if st is None or st.mean is None or not math.isfinite(st.mean):
            raise ValueError(f"mean ablation of feature {iv.feature} needs FeatureStats.mean")
        return _clamp_to(plan, iv.feature, float(st.mean))
    if st is None or len(st.samples) == 0:
        raise ValueError(f"resample ablation of feature {iv.feature} needs FeatureStats.samples")
    plan.resample_pools[len(plan.clamp_features)] = torch.tensor(
        list(st.samples), dtype=ctx.directions.dtype, device=ctx.directions.device
    )
    _clamp_to(plan, iv.feature, math.nan)


def _vector(iv: Intervention, ctx: CompileContext, plan: RowPlan) -> None:
    d = ctx.directions.shape[1]
    if len(iv.values) != d:
        raise ValueError(
            f"vector {iv.feature} has {len(iv.values)} values; the SAE's hook has d_in={d}"
        )
    if iv.strength == 0.0:
        return
    v = torch.tensor(iv.values, dtype=ctx.directions.dtype, device=ctx.directions.device)  # [d]
    plan.add = iv.strength * v if plan.add is None else plan.add + iv.strength * v


def _logit(iv: Intervention, ctx: CompileContext, plan: RowPlan) -> None:
    if iv.strength == 0.0:
        return
    if ctx.logit_direction is None:
        raise ValueError("logit mode needs the model's unembedding (an attached SAE)")
    bias = iv.strength * ctx.logit_direction(iv.feature)  # [vocab]
    plan.logit_bias = bias if plan.logit_bias is None else plan.logit_bias + bias


register_intervention("add", _add)
register_intervention("clamp", _clamp)
register_intervention("ablate", _ablate)
register_intervention("logit", _logit)
register_intervention("vector", _vector)


def compile_plan(
    att: SteeringSAE,
    interventions: Sequence[Intervention],
    positions: str = "all",
    *,
    stats: Mapping[int, FeatureStats] | None = None,
    seed: int = 0,
) -> RowPlan:
    """Turn interventions into one row's `RowPlan` (`seed` drives resample draws only).

    Raises ValueError for a feature index outside the SAE (naming d_sae) and for
    mean/resample ablation without stats.
    """
    directions = att.decoder_directions  # [d_sae, d]
    d_sae = directions.shape[0]
    for iv in interventions:
        if iv.mode != "vector" and not 0 <= iv.feature < d_sae:
            raise ValueError(f"feature {iv.feature} is out of range: this SAE has d_sae={d_sae}")
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}; use one of {list(POSITIONS)}")
    plan = RowPlan(positions=positions, hook_name=att.hook_name, encode=att.encode)
    logit_fn = (lambda f: logit_direction(att, f)) if hasattr(att, "lm") else None
    ctx = CompileContext(directions=directions, logit_direction=logit_fn, stats=stats or {})
    for iv in interventions:
        _REGISTRY[iv.mode](iv, ctx, plan)
    if plan.clamp_features:
        plan.clamp_directions = directions[plan.clamp_features]  # [k, d]
    if plan.resample_pools:
        plan.generator = torch.Generator(device=directions.device).manual_seed(seed)
    return plan


def logit_direction(att: Any, feature: int) -> Float[Tensor, " vocab"]:
    """``d_f · W_U`` through the final norm's linear part: the one definition is in facts.py."""
    return logit_vectors(att, [feature])[0]  # [vocab]


# --------------------------------------------------------------------------- the math


def _clamp_targets(plan: RowPlan, f: Float[Tensor, "pos k"]) -> Float[Tensor, "pos k"]:
    target = torch.tensor(plan.clamp_values, dtype=f.dtype, device=f.device).expand_as(f).clone()
    for slot, pool in plan.resample_pools.items():
        idx = torch.randint(
            len(pool), (f.shape[0],), generator=plan.generator, device=pool.device
        )  # [pos]
        target[:, slot] = pool[idx].to(f.dtype)
    return target


def add_delta(
    plans: Sequence[RowPlan | None],
    eligible: Bool[Tensor, "batch pos"],
) -> Float[Tensor, "batch pos d"] | None:
    """What the add interventions write, for every row at once (zero rows where a row adds
    nothing), or None when no row adds. Depends only on the plans and `eligible`, so a batch
    can reuse it for every decode step until its rows change."""
    adds = [p.add if p is not None else None for p in plans]
    some = next((a for a in adds if a is not None), None)
    if some is None:
        return None
    rows = torch.stack([torch.zeros_like(some) if a is None else a for a in adds])  # [batch, d]
    return eligible.unsqueeze(-1).to(some.dtype) * rows.unsqueeze(1)  # [batch, pos, d]


def apply_plans(
    x: Float[Tensor, "batch pos d"],
    plans: Sequence[RowPlan | None],
    eligible: Bool[Tensor, "batch pos"],
    delta: Float[Tensor, "batch pos d"] | None = None,
) -> Float[Tensor, "batch pos d"] | None:
    """Apply each row's plan to its own row of `x` at its eligible positions.

    `eligible` already combines the row's `positions` rule with real (non-padding) tokens;
    `delta` is `add_delta(plans, eligible, x)` if the caller has it cached. Rows without a
    plan get exactly +0.0. Returns a new tensor, or None when no row has anything to do.
    """
    if delta is None:
        delta = add_delta(plans, eligible)
    clamp_rows = [i for i, p in enumerate(plans) if p is not None and p.clamp_features]
    if delta is None and not clamp_rows:
        return None
    x = x + delta.to(x.dtype) if delta is not None else x.clone()  # [batch, pos, d]
    for i in clamp_rows:  # clamps see the residual after the adds, so the clamp wins
        plan = plans[i]
        m = eligible[i].unsqueeze(-1).to(x.dtype)  # [pos, 1]
        f = plan.encode(x[i : i + 1])[0][:, plan.clamp_features]  # [pos, k]
        change = (_clamp_targets(plan, f) - f) * m  # [pos, k]
        x[i] += change.to(x.dtype) @ plan.clamp_directions.to(x.dtype)  # [pos, d]
    return x


def apply_logit_bias(
    logits: Float[Tensor, "batch vocab"],
    plans: Sequence[RowPlan | None],
    kind: Kind,
) -> Float[Tensor, "batch vocab"]:
    """Add each row's logit bias to its own logits (only where the row acts on `kind`)."""
    for i, plan in enumerate(plans):
        if plan is not None and plan.logit_bias is not None and plan.acts_on(kind):
            logits[i] += plan.logit_bias[: logits.shape[-1]].to(logits.dtype)  # [vocab]
    return logits
