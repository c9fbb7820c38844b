"""The demo model's recipe: BPE tokenizer -> GPT-2 LM -> TopK SAE, all seeded, on 2 CPU cores.

    python -m workers.engine.demo.train                  # the committed checkpoint
    python -m workers.engine.demo.train --micro --out /tmp/micro   # seconds; the test suite

Writes `OUT/model/` (HF GPT-2 + tokenizer, `save_pretrained`), `OUT/sae/` (SAELens
`cfg.json` + `sae_weights.safetensors`, loadable with `sae_lens.SAE.load_from_disk`) and
`OUT/recipe.json` (settings, corpus provenance, loss curves, final metrics, timings).
The tokenizer is written as soon as it is trained, before the model.

The settings are recipe.py's `Recipe` (`FULL`, `MICRO`); lm.py trains the tokenizer and the
language model, sae.py the SAE on activations at `Recipe.hook_name`
(`blocks.{L}.hook_resid_post`), BOS positions excluded. This module runs them in order.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from workers.engine.demo import CHECKPOINT_DIR
from workers.engine.demo.corpus import load_documents, package_versions, validation_split
from workers.engine.demo.lm import EOT, build_model, encode_stream, train_lm, train_tokenizer
from workers.engine.demo.recipe import FULL, MICRO, Recipe
from workers.engine.demo.sae import collect_activations, save_sae, spliced_val_loss, train_sae

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(r: Recipe, out: Path) -> dict:
    """Train everything into `out`; returns (and writes) the recipe record."""
    torch.set_num_threads(r.threads)
    seed_everything(r.seed)
    t_start = time.time()
    docs = load_documents(limit_per_source=r.limit_per_source)
    val_docs, train_docs = validation_split(docs, r.seed, r.val_fraction)

    tok = train_tokenizer(train_docs, r.vocab_size, out / "model")
    eot = tok.convert_tokens_to_ids(EOT)
    train, val = encode_stream(tok, train_docs), encode_stream(tok, val_docs)
    log.info(
        "tokenizer: vocab %d; %d train / %d val tokens from %d docs",
        len(tok),
        len(train),
        len(val),
        len(docs),
    )

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
    provenance = {
        "corpus_packages": package_versions(),
        "training_tokens": len(train),
        "recipe_seed": r.seed,
    }
    save_sae(sae, r, out / "sae", provenance)

    record = {
        "recipe": asdict(r),
        "corpus": {
            "packages": package_versions(),
            "documents": len(docs),
            "train_tokens": len(train),
            "val_tokens": len(val),
        },
        "model": {"params": n_params, "lm_tokens_seen": r.lm_steps * r.lm_batch * r.n_ctx, **lm},
        "sae": {"hook_name": r.hook_name, "tokens": len(acts), **sae_stats},
        "sizes_bytes": {"model": _dir_bytes(out / "model"), "sae": _dir_bytes(out / "sae")},
        "seconds_total": round(time.time() - t_start, 1),
        "torch": torch.__version__,
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log.info(
        "done in %.0fs: lm val %.3f, sae EV %.3f L0 %.1f, spliced val %.3f; %d bytes",
        record["seconds_total"],
        lm["val_loss"],
        sae_stats["explained_variance"],
        sae_stats["l0"],
        sae_stats["spliced_val_loss"],
        sum(record["sizes_bytes"].values()),
    )
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--micro", action="store_true", help="tiny sizes for tests (seconds)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: {CHECKPOINT_DIR}; required with --micro)",
    )
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
