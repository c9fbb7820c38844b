"""`eval_sae_tokens_per_s` and `eval_overhead`: SAE quality metrics vs a bare forward pass.

Ours: ``evaluate_sae`` on the demo SAE as the task runs it — for the first DEFAULT_LOSS_TOKENS
positions one forward of clean + spliced rows per batch, CE and KL scored over the full
vocabulary, zero ablation from its one cached distribution (a residual hook); past them a
forward to the hook only; the SAE encoded and decoded on every token.
`eval_overhead_all_losses` scores the losses on every token instead (the first chunk only).
Bare: ``model(input_ids).logits`` over the same windows in the same batches, nothing else.
The demo's held-out split has ~85k tokens, so it is cycled to 1M tokens (the figures are about
speed; the windows repeat). Both run on one CPU thread, alternating in chunks so that load on
this shared machine hits both alike.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from tests.bench._engine import demo_attached, one_torch_thread
from workers.engine.corpus import iter_documents
from workers.engine.evals import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LOSS_TOKENS,
    evaluate_sae,
    held_out_windows,
)
from workers.engine.indexing import Windows
from workers.engine.loading import AttachedSAE

TOKENS = 1_000_000
CHUNKS = 8  # alternations of bare and ours


def cycled(windows: Windows, n_tokens: int) -> Windows:
    """``windows`` repeated (whole windows) until they hold at least ``n_tokens`` positions."""
    reps = -(-n_tokens // windows.n_tokens)
    lengths = np.tile(windows.lengths(), reps)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Windows(
        np.tile(windows.tokens, reps),
        offsets,
        np.tile(windows.doc, reps),
        np.tile(windows.start, reps),
        has_bos=windows.has_bos,
        context=windows.context,
    )


def part(windows: Windows, lo: int, hi: int) -> Windows:
    """Windows ``lo..hi-1`` as their own Windows."""
    a = int(windows.offsets[lo])
    return Windows(
        windows.tokens[a : int(windows.offsets[hi])],
        windows.offsets[lo : hi + 1] - a,
        windows.doc[lo:hi],
        windows.start[lo:hi],
        has_bos=windows.has_bos,
        context=windows.context,
    )


def bare_forward(att: AttachedSAE, windows: Windows, batch_size: int) -> None:
    lm = att.lm
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            ids = np.arange(start, min(start + batch_size, len(windows)))
            input_ids, real = windows.batch(ids, lm.pad_token_id, lm.device)
            mask = None if bool(real.all()) else real.long()
            lm.model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits  # noqa: B018


def run() -> list[dict]:
    with one_torch_thread():
        return _measure()


def _measure() -> list[dict]:
    att = demo_attached()
    if att is None:
        raise RuntimeError("the eval bench needs the committed demo checkpoint")
    held_out = held_out_windows(att, iter_documents("demo:val"), tokens=TOKENS)
    windows = cycled(held_out, TOKENS)
    bounds = np.linspace(0, len(windows), CHUNKS + 1).astype(int)
    bare_s = ours_s = 0.0
    bare_forward(att, part(windows, 0, 32), DEFAULT_BATCH_SIZE)  # warm-up
    budget = DEFAULT_LOSS_TOKENS  # as one call over all the windows spends it: chunk by chunk
    for lo, hi in itertools.pairwise(bounds):
        chunk = part(windows, int(lo), int(hi))
        t0 = time.perf_counter()
        bare_forward(att, chunk, DEFAULT_BATCH_SIZE)
        t1 = time.perf_counter()
        evaluate_sae(att, chunk, batch_size=DEFAULT_BATCH_SIZE, loss_tokens=budget)
        t2 = time.perf_counter()
        if budget:
            first = (chunk, t1 - t0)
        budget = max(0, budget - chunk.n_tokens)
        bare_s, ours_s = bare_s + (t1 - t0), ours_s + (t2 - t1)
    t0 = time.perf_counter()
    evaluate_sae(att, first[0], batch_size=DEFAULT_BATCH_SIZE, loss_tokens=None)
    all_losses = (time.perf_counter() - t0) / first[1]
    n = windows.n_tokens
    return [
        {
            "name": "eval_sae_tokens_per_s",
            "value": round(n / ours_s),
            "unit": f"tokens/s (demo SAE, {n:,} held-out tokens cycled, 1 CPU thread)",
            "target": None,
        },
        {
            "name": "eval_overhead",
            "value": round(ours_s / bare_s, 2),
            "unit": f"x a bare forward over the same tokens ({ours_s:.0f} s vs {bare_s:.0f} s)",
            "target": "<= 1.5",
        },
        {
            "name": "eval_overhead_all_losses",
            "value": round(all_losses, 2),
            "unit": f"x a bare forward, CE and KL on every token ({first[0].n_tokens:,} tokens)",
            "target": None,
        },
    ]
