"""Engine-level measurements shared by the real-shape benches (`scale` on the CPU stack,
`gpu_scale` on a CUDA device): the bare forward-to-hook + encode pass, and greedy decoding."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from tests.bench._engine import hook_baseline_model
from workers.engine.indexing import Windows
from workers.engine.loading import AttachedSAE


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_to_hook(att: AttachedSAE) -> nn.Module:
    """The base transformer cut right after the last block the hook needs, no hooks and no
    final norm: its last hidden state is the activation at a resid_pre/resid_post hook."""
    hook = att.hook
    if hook.kind not in ("resid_pre", "resid_post"):
        raise ValueError(f"the bare baseline needs a residual-stream hook, got {att.hook_name}")
    last = hook.layer - 1 if hook.kind == "resid_pre" else hook.layer
    if last < 0:
        raise ValueError(f"{att.hook_name} reads the embeddings: no block to run")
    return hook_baseline_model(att.lm, last)


def bare_pass(att: AttachedSAE, windows: Windows, batch_size: int) -> Callable[[], float]:
    """A function that runs the bare forward + ``sae.encode`` over ``windows`` (batched as
    the indexer batches them, already on the device) and returns its seconds."""
    cut = baseline_to_hook(att)
    dev = att.lm.device
    batches = [
        windows.batch(list(range(b, min(b + batch_size, len(windows)))), att.lm.pad_token_id, dev)
        for b in range(0, len(windows), batch_size)
    ]

    def run() -> float:
        _sync(dev)
        start = time.perf_counter()
        with torch.inference_mode():
            for ids, real in batches:
                mask = None if bool(real.all()) else real.long()
                hidden = cut(
                    input_ids=ids, attention_mask=mask, use_cache=False
                ).last_hidden_state  # [b, pos, d]
                att.sae.encode(hidden.to(att.sae.dtype))  # [b, pos, d_sae]
        _sync(dev)
        return time.perf_counter() - start

    return run


@torch.inference_mode()
def decode_ms_per_step(
    model: nn.Module,
    *,
    batch: int,
    steps: int,
    prompt_len: int = 16,
    vocab: int,
    device: torch.device,
    seed: int = 0,
) -> float:
    """Median milliseconds of one greedy decoding step (KV cache, ``batch`` rows), after a
    prompt of ``prompt_len`` random tokens; the prefill is not counted."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, prompt_len), generator=gen).to(device)  # [b, p]
    out = model(input_ids=ids, use_cache=True)
    past = out.past_key_values
    next_ids = out.logits[:, -1].argmax(-1, keepdim=True)  # [b, 1]
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        out = model(input_ids=next_ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        next_ids = out.logits[:, -1].argmax(-1, keepdim=True)  # [b, 1]
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
