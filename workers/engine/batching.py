"""Continuous batching: independent rows share one forward pass per decode step.

`DecodeBatch` is the only decoding loop in the engine. It holds rows left-padded into one
KV cache (transformers DynamicCache, `[batch, heads, T, d_head]` per layer) plus a 2-D
attention mask over the cache columns. Rows join between steps (their prompts are prefilled
together, then their cache rows are left-padded and concatenated onto the running batch) and
leave between steps (their cache rows are dropped; leading all-padding columns are trimmed).
Each row carries its own `RowPlan` (interventions + positions), sampling settings and
`torch.Generator`, so a row's tokens depend only on its own request: a row is never written
by another row's plan (rows without one get exactly +0.0), and padding is masked out of
attention.

Steering hooks are scoped by the batch: `with DecodeBatch(lm) as batch:` registers at most
one dispatcher per SAE hook name (through hooks.intercept) on first use and removes them all
in `close()`, also after an exception. Between forward passes, and on any other thread, the
dispatcher does nothing; during this batch's own forward it applies the current step's plans.
Registering once per batch instead of once per step keeps the per-step steering cost to one
tensor add for add-only steering (the `steer_overhead` benchmark).

Tokens are drawn by sampling.py. scheduler.py drives batches: `run_job` decodes one `Job`
(e.g. generate()'s default and steered rows) through a private `DecodeBatch`;
`BatchScheduler` runs many jobs through one shared `DecodeBatch` on one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import DynamicCache

from workers.engine.hooks import intercept
from workers.engine.interventions import (
    Kind,
    RowPlan,
    add_delta,
    apply_logit_bias,
    apply_plans,
)
from workers.engine.sampling import sample_tokens, token_probabilities

log = logging.getLogger(__name__)

TokenCallback = Callable[[str, int, str], None]  # (row label, token id, new text)


# --------------------------------------------------------------------------- rows and jobs


@dataclass
class RowRequest:
    """One row to decode: prompt token ids, steering plan (None = unsteered), sampling."""

    label: str
    prompt_ids: list[int]
    plan: RowPlan | None
    temperature: float
    top_p: float
    seed: int
    max_new_tokens: int


@dataclass
class RowState:
    req: RowRequest
    job: Job
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)  # generated ids
    probs: list[float] = field(default_factory=list)  # each generated token's probability
    top: list[list[tuple[int, float]]] = field(default_factory=list)  # its alternatives
    n_real: int = 0  # real (non-padding) tokens in the KV cache
    text: str = ""  # text streamed so far
    prefix_offset: int = 0  # incremental detokenization window (see _delta)
    read_offset: int = 0
    done: bool = False


@dataclass
class Job:
    """Rows that belong to one request. `finish(outputs, cancelled)` builds the result from
    {label: (tokens, text, (probs, alternatives))} (see `sampling.token_probabilities`);
    `on_token` streams; `cancel()` is polled before every step. `client` names who asked:
    `BatchScheduler` admits waiting jobs round-robin across clients (None is one client)."""

    rows: Sequence[RowRequest]
    finish: Callable[[dict[str, tuple], bool], Any]
    on_token: TokenCallback | None = None
    cancel: Callable[[], bool] | None = None
    client: str | None = None
    cancelled: bool = False
    error: BaseException | None = None
    states: list[RowState] = field(default_factory=list)

    def should_stop(self) -> bool:
        if not self.cancelled and self.error is None and self.cancel is not None:
            try:
                self.cancelled = bool(self.cancel())
            except Exception as exc:  # e.g. the store holding the cancel flag is down
                log.exception("cancel() failed; stopping that request")
                self.error = exc
        return self.cancelled or self.error is not None

    @property
    def finished(self) -> bool:
        return bool(self.states) and all(s.done for s in self.states)

    def outputs(self) -> dict[str, tuple]:
        return {
            s.req.label: (list(s.tokens), s.text, (list(s.probs), list(s.top))) for s in self.states
        }


# --------------------------------------------------------------------------- the batch


def _pad_left(t: Tensor, width: int, dim: int) -> Tensor:
    if width == 0:
        return t
    shape = list(t.shape)
    shape[dim] = width
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class DecodeBatch:
    """Rows decoding together. Not thread-safe: one thread drives join/step/evict.
    Use as a context manager (or call `close()`) so its steering hooks leave the model."""

    def __init__(self, lm: Any, stop_ids: Sequence[int] | None = None) -> None:
        """`stop_ids` end a row when sampled; None = the tokenizer's EOS token."""
        self.lm = lm
        self.model = lm.model
        self.device = torch.device(lm.device)
        if stop_ids is None:
            eos = lm.tokenizer.eos_token_id
            stop_ids = () if eos is None else (int(eos),)
        self.stop_ids = frozenset(stop_ids)
        self.rows: list[RowState] = []
        self.cache: DynamicCache | None = None
        self.mask: Tensor | None = None  # [batch, T] 1 = real token in the cache
        # Steering hooks: one per hook name, entered on first use and removed by close().
        self._hooks = ExitStack()
        self._hooked: set[str] = set()
        self._step: dict[str, tuple] | None = None  # set only during this batch's forward
        self._decode_step: dict[str, tuple] | None = None  # reused until the rows change

    # -- steering hooks (scoped by the batch: `with DecodeBatch(lm) as batch:`) -------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this batch registered (also after an exception)."""
        self._hooked.clear()
        self._hooks.close()

    def _dispatch(self, name: str, x: Tensor) -> Tensor | None:
        step = self._step
        # Act only inside this batch's own forward pass (intercept already ignores forward
        # passes on other threads): a forward between steps sees the model untouched.
        if step is None or name not in step:
            return None
        row_plans, eligible, delta = step[name]
        return apply_plans(x, row_plans, eligible, delta)

    def _plan_step(self, plans: list, mask: Tensor, q: int, kind: Kind) -> dict[str, tuple]:
        """Per hook name: (row plans, eligible [batch, q], add delta [batch, q, d])."""
        if kind == "generated" and self._decode_step is not None:
            return self._decode_step
        step = {}
        names = {p.hook_name for p in plans if p is not None and p.needs_hook}
        if names:
            acts = torch.tensor(
                [p is not None and p.acts_on(kind) for p in plans], device=self.device
            )  # [batch]
            eligible = acts[:, None] & mask[:, -q:].bool()  # [batch, q]
            if kind == "prompt":
                eligible = self._prompt_masks(plans, eligible)
            for name in names:
                rp = [p if p is not None and p.hook_name == name else None for p in plans]
                step[name] = (rp, eligible, add_delta(rp, eligible))
                if name not in self._hooked:
                    self._hooks.enter_context(
                        intercept(self.model, name, lambda x, n=name: self._dispatch(n, x))
                    )
                    self._hooked.add(name)
        if kind == "generated":
            self._decode_step = step
        return step

    @staticmethod
    def _prompt_masks(plans: list, eligible: Tensor) -> Tensor:
        """Prefill eligibility narrowed to each plan's `prompt_mask` (positions "assistant"):
        the mask covers the row's prompt, which is right-aligned in the left-padded batch."""
        for i, p in enumerate(plans):
            if p is not None and p.prompt_mask is not None:
                m = p.prompt_mask.to(eligible.device)  # [prompt]
                row = torch.zeros_like(eligible[i])  # [q]
                row[row.shape[0] - m.shape[0] :] = m
                eligible[i] &= row
        return eligible

    # -- forward with every row's own steering --------------------------------------------

    def _forward(
        self,
        ids: Tensor,
        mask: Tensor,
        pos: Tensor,
        cache: DynamicCache,
        rows: Sequence[RowState],
        kind: Kind,
    ) -> Float[Tensor, "batch vocab"]:
        plans = [r.req.plan for r in rows]
        self._step = self._plan_step(plans, mask, ids.shape[1], kind)
        try:
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        finally:
            self._step = None
        logits = out.logits[:, -1, :].float()  # [batch, vocab]
        return apply_logit_bias(logits, plans, kind)

    def _emit(self, rows: Sequence[RowState], logits: Float[Tensor, "batch vocab"]) -> None:
        tokens = sample_tokens(
            logits,
            [row.req.temperature for row in rows],
            [row.req.top_p for row in rows],
            [row.generator for row in rows],
        )
        probs, tops = token_probabilities(logits, tokens)
        for row, tok, p, top in zip(rows, tokens, probs, tops, strict=True):
            r = row.req
            row.tokens.append(tok)
            row.probs.append(p)
            row.top.append(top)
            row.done = len(row.tokens) >= r.max_new_tokens or tok in self.stop_ids
            delta = self._delta(row)
            row.text += delta
            job = row.job
            if job.on_token is not None and job.error is None:
                try:
                    job.on_token(r.label, tok, delta)
                except Exception as exc:  # a broken consumer ends its own job only
                    log.exception("on_token callback failed; stopping that request")
                    job.error = exc

    def _delta(self, row: RowState) -> str:
        """New final text of a row, decoding a short window rather than the whole row.

        The window starts one chunk back so that tokenizers which drop a leading space on the
        first decoded token (SentencePiece) still decode it; text ending in U+FFFD (a byte-level
        token cut mid-character) is held back until the character completes or the row ends.
        """
        toks = row.tokens
        if row.done:
            full = self.lm.decode(toks)
            return full[len(row.text) :] if full.startswith(row.text) else ""
        prefix = self.lm.decode(toks[row.prefix_offset : row.read_offset])
        new = self.lm.decode(toks[row.prefix_offset :])
        if len(new) > len(prefix) and not new.endswith("\ufffd"):
            row.prefix_offset, row.read_offset = row.read_offset, len(toks)
            return new[len(prefix) :]
        return ""

    # -- rows join ------------------------------------------------------------------------

    def join(self, jobs: Job | Sequence[Job]) -> list[Job]:
        """Prefill the rows of `jobs` (all in one forward pass), sample each row's first token,
        merge the rows into the running batch. Rows that are already finished leave at once.
        Returns the jobs now complete (see `evict`)."""
        jobs = [jobs] if isinstance(jobs, Job) else list(jobs)
        reqs = [(job, r) for job in jobs for r in job.rows]
        t = max(len(r.prompt_ids) for _, r in reqs)
        ids = torch.zeros(len(reqs), t, dtype=torch.long)  # [b, t] left padded
        mask = torch.zeros(len(reqs), t, dtype=torch.long)  # [b, t]
        for i, (_, r) in enumerate(reqs):
            ids[i, t - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, t - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # [b, t]
        states = [
            RowState(
                req=r,
                job=job,
                n_real=len(r.prompt_ids),
                generator=torch.Generator(device=self.device).manual_seed(r.seed),
            )
            for job, r in reqs
        ]
        for job in jobs:
            job.states = [s for s in states if s.job is job]
        cache = DynamicCache()
        logits = self._forward(ids, mask, pos, cache, states, "prompt")  # [b, vocab]
        self._emit(states, logits)
        self._merge(states, cache, mask)
        return self.evict()

    def _merge(self, states: list[RowState], cache: DynamicCache, mask: Tensor) -> None:
        self._decode_step = None
        if self.cache is None or not self.rows:
            self.rows, self.cache, self.mask = states, cache, mask
            return
        t_old, t_new = self.mask.shape[1], mask.shape[1]
        width = max(t_old, t_new)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            # keys/values: [batch, heads, T, d_head]
            old.keys = torch.cat(
                [_pad_left(old.keys, width - t_old, 2), _pad_left(new.keys, width - t_new, 2)],
                dim=0,
            )
            old.values = torch.cat(
                [_pad_left(old.values, width - t_old, 2), _pad_left(new.values, width - t_new, 2)],
                dim=0,
            )
        self.mask = torch.cat(
            [_pad_left(self.mask, width - t_old, 1), _pad_left(mask, width - t_new, 1)], dim=0
        )  # [batch, width]
        self.rows = self.rows + states
        self._decode_step = None

    # -- one decode step ------------------------------------------------------------------

    def step(self) -> list[Job]:
        """One forward pass for every row, one new token per row; finished rows leave.
        Returns the jobs now complete."""
        if not self.rows:
            return []
        rows = self.rows
        ids = torch.tensor([[r.tokens[-1]] for r in rows], device=self.device)  # [batch, 1]
        pos = torch.tensor([[r.n_real] for r in rows], device=self.device)  # [batch, 1]
        mask = torch.cat([self.mask, self.mask.new_ones(len(rows), 1)], dim=1)  # [batch, T+1]
        logits = self._forward(ids, mask, pos, self.cache, rows, "generated")  # [batch, vocab]
        self.mask = mask
        for r in rows:
            r.n_real += 1
        self._emit(rows, logits)
        return self.evict()

    # -- rows leave -----------------------------------------------------------------------

    def evict(self) -> list[Job]:
        """Drop finished rows and every row of a stopped (cancelled/failed) job. Returns the
        jobs that are now complete."""
        for r in self.rows:
            if r.job.should_stop():
                r.done = True
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if len(keep) == len(self.rows):
            return []
        gone = {id(r.job): r.job for r in self.rows if r.done}
        self.rows = [self.rows[i] for i in keep]
        self._decode_step = None
        if not keep:
            self.cache, self.mask = None, None
        else:
            idx = torch.tensor(keep, device=self.device)
            self.mask = self.mask[idx]  # [batch', T]
            start = int(self.mask.any(0).nonzero()[0])  # first column anyone still needs
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[idx, :, start:]  # [batch', heads, T', d_head]
                layer.values = layer.values[idx, :, start:]
        return [j for j in gone.values() if j.finished]
