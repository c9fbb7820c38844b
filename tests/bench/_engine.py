"""Shared pieces of the engine benchmarks: the demo checkpoint, the bare baseline model, and
the one-thread setting every engine ratio is measured under."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from workers.engine.constants import DEMO_MODEL_DIR, DEMO_SAE_DIR
from workers.engine.hooks import blocks_of
from workers.engine.loading import AttachedSAE, LoadedModel, attach_sae, load_model, load_sae


def demo_attached() -> AttachedSAE | None:
    """Demo model + SAE on CPU in fp32, or None when the checkpoint's weights are absent."""
    if not (
        (DEMO_MODEL_DIR / "model.safetensors").is_file()
        and (DEMO_SAE_DIR / "sae_weights.safetensors").is_file()
    ):
        return None
    lm = load_model("demo", device="cpu", dtype="fp32")
    return attach_sae(lm, load_sae("demo", device="cpu"))


def hook_baseline_model(lm: LoadedModel, layer: int) -> nn.Module:
    """The bare baseline of the engine benches: a copy of the base transformer keeping blocks
    0..layer, with the final norm removed, so its last hidden state is the resid_post at
    ``layer`` with no hooks involved."""
    base_path, blocks_attr = lm.family.blocks.rsplit(".", 1)
    base = copy.deepcopy(lm.model.get_submodule(base_path))
    setattr(base, blocks_attr, nn.ModuleList(list(blocks_of(lm.model))[: layer + 1]))
    setattr(base, lm.family.final_norm.rsplit(".", 1)[1], nn.Identity())
    return base.eval()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, restored afterwards: on this shared 2-core machine, OpenMP threads
    spin-waiting for a busy core make the demo model's tiny matmuls up to 10x slower at
    random, which drowns every ratio in noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
