"""The demo's tokenizer and language model: byte-level BPE, then a small GPT-2 from scratch.

Training windows are `[<|endoftext|>] + n_ctx-1 tokens` cut at random from the corpus stream
(documents separated by <|endoftext|>); a fraction start without the BOS so the model also
copes with prompts that lack it. Every random draw comes from an explicit generator seeded
from the recipe.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from workers.engine.demo.corpus import Document
from workers.engine.demo.recipe import Recipe

log = logging.getLogger(__name__)
EOT = "<|endoftext|>"


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


def encode_stream(tok, docs: list[Document]) -> Int[Tensor, " n_tokens"]:
    """All documents as one int32 stream, each preceded by <|endoftext|>."""
    eot = tok.convert_tokens_to_ids(EOT)
    ids: list[int] = []
    for enc in tok.backend_tokenizer.encode_batch([d.text for d in docs]):
        ids.append(eot)
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.int32)  # [n_tokens]


def sample_windows(
    stream: Int[Tensor, " n_tokens"],
    batch: int,
    n_ctx: int,
    eot: int,
    no_bos: float,
    gen: torch.Generator,
) -> Int[Tensor, "batch n_ctx"]:
    """[batch, n_ctx] windows; most start with <|endoftext|> (the BOS the engine prepends)."""
    starts = torch.randint(0, len(stream) - n_ctx, (batch,), generator=gen)
    rows = torch.stack([stream[s : s + n_ctx] for s in starts.tolist()]).long()  # [b, n_ctx]
    with_bos = torch.rand(batch, generator=gen) >= no_bos
    rows[with_bos, 1:] = rows[with_bos, :-1].clone()
    rows[with_bos, 0] = eot
    return rows


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then a cosine down to 10% of it (the SAE uses it too)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))  # floor at 10%


# ---------------------------------------------------------------- language model


def build_model(r: Recipe, tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    eot = tok.convert_tokens_to_ids(EOT)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=r.n_ctx,
        n_embd=r.n_embd,
        n_layer=r.n_layer,
        n_head=r.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def lm_eval(model, stream: Int[Tensor, " n_tokens"], r: Recipe, eot: int) -> float:
    """Mean loss over `r.eval_batches` windows, the same windows on every call."""
    gen = torch.Generator().manual_seed(r.seed + 1)  # same val windows every time
    model.eval()
    losses = [
        model(
            input_ids=(x := sample_windows(stream, r.lm_batch, r.n_ctx, eot, 0.0, gen)), labels=x
        ).loss.item()
        for _ in range(r.eval_batches)
    ]
    model.train()
    return sum(losses) / len(losses)


def train_lm(
    model, train: Int[Tensor, " n_train"], val: Int[Tensor, " n_val"], r: Recipe, eot: int
) -> dict:
    """AdamW with weight decay on matrices only, cosine LR, gradient clip 1.0; returns the
    loss curve and the final train (EMA) and validation losses."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": r.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=r.lm_lr,
        betas=(0.9, 0.95),
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
            log.info(
                "lm step %d/%d loss %.3f (ema %.3f) %.2f steps/s",
                step,
                r.lm_steps,
                loss.item(),
                ema,
                (step + 1) / (time.time() - t0),
            )
    val_loss = lm_eval(model, val, r, eot)
    log.info("lm done: val loss %.3f in %.0fs", val_loss, time.time() - t0)
    return {
        "curve": curve,
        "final_train_loss_ema": round(ema, 4),
        "val_loss": round(val_loss, 4),
        "seconds": round(time.time() - t0, 1),
    }
