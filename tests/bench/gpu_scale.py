"""The real shape on a CUDA device, engine level, in one go (well under 8 minutes on one GPU):

    python -m tests.bench.gpu_scale --out var/bench/gpu_scale.jsonl
    python -m tests.bench.gpu_scale --dry-run          # CPU, mini shape, tiny counts (a test)
    make bench BENCH=gpu_scale                          # the same figures; none without CUDA

Builds the assets of tests/bench/_scale_assets.py when they are missing (nothing is
downloaded: the demo corpus when installed, else the repository's own text), loads them with
the engine (bf16 on CUDA) and writes one JSON line per figure to stdout and to ``--out``:

- gpu_index_tokens_per_s: the engine's indexing pass (``index_corpus``: the hooked forward to
  ``blocks.8.hook_resid_pre``, ``sae.encode`` and every statistic, then the finalize) over
  >= 3M tokens: the corpus's windows, repeated until the count is reached;
- gpu_index_overhead: that pass ÷ the bare forward to the hook + encode over the same windows;
- gpu_index_peak_mem_gb: peak GPU memory allocated during the pass (torch's allocator);
- gpu_decode_ms_per_step_b{1,8,32}: greedy decoding with a KV cache, median step;
- gpu_peak_mem_gb: peak GPU memory over the whole script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TOKENS = 3_000_000
DRY_TOKENS = 2_048
CONTEXT = 128
BATCH = 64
DECODE_BATCHES = (1, 8, 32)
DECODE_STEPS = 64


def repeat_windows(windows, n_tokens: int):
    """``windows`` repeated (each copy a new run of window ids) until ``n_tokens`` positions."""
    from workers.engine.indexing import Windows

    copies = max(1, -(-n_tokens // windows.n_tokens))
    lengths = np.tile(windows.lengths(), copies)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Windows(
        np.tile(windows.tokens, copies),
        offsets,
        np.tile(windows.doc, copies),
        np.tile(windows.start, copies),
        has_bos=windows.has_bos,
        context=windows.context,
    )


def measure(*, dry_run: bool, tokens: int, batch: int, root: Path | None) -> list[dict]:
    import torch

    from tests.bench._scale_assets import build_scale_assets, corpus_documents
    from tests.bench._scale_measure import bare_pass, decode_ms_per_step
    from workers.engine.indexing import index_corpus, make_windows
    from workers.engine.loading import attach_sae, load_model, load_sae

    if not dry_run and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: run with --dry-run for the CPU check")
    device = "cpu" if dry_run else "cuda"
    t0 = time.perf_counter()
    assets = build_scale_assets(root, mini=dry_run)
    lm = load_model(str(assets.model_dir), device=device)  # bf16 on CUDA, fp32 on CPU
    att = attach_sae(lm, load_sae(str(assets.sae_dir), device=device))
    docs = corpus_documents(assets.corpus)
    base = make_windows(lm, docs, context=CONTEXT, tokens=tokens)
    windows = repeat_windows(base, tokens) if base.n_tokens < tokens else base
    meta = {
        "shape": assets.recipe.name,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": str(lm.dtype).removeprefix("torch."),
        "hook": assets.hook_name,
        "d_sae": assets.recipe.d_sae,
        "corpus": assets.corpus,
        "context": CONTEXT,
        "batch": batch,
    }

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    # Warm-up on a slice (kernels, allocator), then the timed pass.
    warm = make_windows(lm, docs, context=CONTEXT, tokens=8 * CONTEXT)
    index_corpus(att, warm, batch_size=batch)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    stats = index_corpus(att, windows, batch_size=batch)
    sync()
    index_s = time.perf_counter() - start
    index_mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    bare = bare_pass(att, windows, batch)
    bare()  # warm-up
    bare_s = bare()
    rows = [
        {
            "name": "gpu_index_tokens_per_s",
            "value": round(windows.n_tokens / index_s, 1),
            "unit": "tokens/s",
            "target": None,
            "tokens": windows.n_tokens,
            "seconds": round(index_s, 2),
            "live_features": int((np.asarray(stats.density) > 0).sum()),
            **meta,
        },
        {
            "name": "gpu_index_overhead",
            "value": round(index_s / bare_s, 3),
            "unit": "ratio",
            "target": None,
            "bare_s": round(bare_s, 2),
            **meta,
        },
        {
            "name": "gpu_index_peak_mem_gb",
            "value": round(index_mem, 3) if index_mem is not None else None,
            "unit": "GiB",
            "target": None,
            **meta,
        },
    ]
    del bare
    for b in DECODE_BATCHES:
        ms = decode_ms_per_step(
            lm.model,
            batch=b,
            steps=4 if dry_run else DECODE_STEPS,
            vocab=lm.vocab_size,
            device=lm.device,
        )
        rows.append(
            {
                "name": f"gpu_decode_ms_per_step_b{b}",
                "value": round(ms, 3),
                "unit": "ms",
                "target": None,
                "shape": meta["shape"],
                "device": meta["device"],
                "dtype": meta["dtype"],
            }
        )
    rows.append(
        {
            "name": "gpu_peak_mem_gb",
            "value": round(torch.cuda.max_memory_allocated() / 2**30, 3)
            if device == "cuda"
            else None,
            "unit": "GiB",
            "target": None,
            "script_s": round(time.perf_counter() - t0, 1),
            "assets_built_now": assets.built,
            "assets_build_s": round(assets.build_s, 1),
            **meta,
        }
    )
    return rows


def run() -> list[dict]:
    """The `make bench` entry: the figures on CUDA, none (with a note) without it."""
    import torch

    if not torch.cuda.is_available():
        sys.stderr.write("gpu_scale: no CUDA device here; no figures\n")
        return []
    return measure(dry_run=False, tokens=TOKENS, batch=BATCH, root=None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    p.add_argument("--dry-run", action="store_true", help="CPU, mini shape, tiny token counts")
    p.add_argument("--tokens", type=int, help=f"tokens to index (default {TOKENS:,})")
    p.add_argument("--batch", type=int, default=BATCH, help=f"windows per batch ({BATCH})")
    p.add_argument("--root", type=Path, help="assets folder (default var/bench/scale)")
    a = p.parse_args(argv)
    tokens = a.tokens or (DRY_TOKENS if a.dry_run else TOKENS)
    if tokens < 1 or a.batch < 1:
        p.error("--tokens and --batch must be positive")
    rows = measure(dry_run=a.dry_run, tokens=tokens, batch=a.batch, root=a.root)
    lines = "".join(json.dumps({"group": "gpu_scale", **row}) + "\n" for row in rows)
    sys.stdout.write(lines)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
