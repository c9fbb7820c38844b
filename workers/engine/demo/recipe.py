"""Every knob of the demo recipe, as one frozen dataclass; `recipe.json` records it.

`FULL` made the committed checkpoint; `MICRO` is the test suite's miniature (seconds on one
thread). Training itself is in lm.py (tokenizer and language model) and sae.py; train.py
runs the whole recipe.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """Every knob of the recipe; `recipe.json` records it beside the results."""

    seed: int = 0
    threads: int = 2
    limit_per_source: int | None = None  # documents per corpus source (None: all)
    val_fraction: float = 0.02
    # tokenizer
    vocab_size: int = 4096
    # language model
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 96
    n_ctx: int = 128
    no_bos_fraction: float = 0.1
    lm_batch: int = 16
    lm_steps: int = 3000  # ~0.6 s/step on 2 idle CPU cores (1-3 s when shared)
    lm_lr: float = 3e-3
    lm_warmup: int = 100
    weight_decay: float = 0.1
    eval_batches: int = 20
    # SAE
    sae_layer: int = 1  # the middle of 3 blocks
    d_sae: int = 1536
    k: int = 20
    sae_tokens: int = 300_000  # activations collected once, then shuffled for every epoch
    sae_batch: int = 2048
    sae_steps: int = 1200
    sae_lr: float = 1e-3
    aux_k: int = 256
    aux_coef: float = 1 / 32
    dead_after_tokens: int = 200_000  # a latent silent this long counts as dead (AuxK)
    log_every: int = 50

    @property
    def hook_name(self) -> str:
        """Where the SAE reads the model (a property, so `recipe.json` does not repeat it)."""
        return f"blocks.{self.sae_layer}.hook_resid_post"


FULL = Recipe()
MICRO = Recipe(
    limit_per_source=40,
    vocab_size=512,
    n_layer=2,
    n_head=2,
    n_embd=32,
    n_ctx=32,
    lm_batch=8,
    lm_steps=150,
    lm_lr=3e-3,
    lm_warmup=10,
    eval_batches=4,
    sae_layer=0,
    d_sae=128,
    k=8,
    sae_tokens=8_000,
    sae_batch=256,
    sae_steps=150,
    aux_k=32,
    dead_after_tokens=5_000,
    log_every=25,
)
