"""Steering showcases on the demo SAE: how long the home page's showcases take (reported).

showcases_seconds: one run of the engine's criterion (workers/engine/showcases.py) with the
worker's budget, in process on one CPU thread: the SHOWCASE_CANDIDATES default (16) live features
with the largest density × top logit effect, each at STRENGTH_MULTIPLES (2×, 4×) of its max
activation, on the 3 default prompts, 24 new tokens each: 99 decoded rows and their
teacher-forced reads. Statistics come from an in-process index of the demo SAE over 20,000
demo-corpus tokens (as the worker reads them from the database); logit tokens are limited to
tokens of that corpus, as stored. The model, SAE and index are ready before the clock starts.
"""

from __future__ import annotations

import time

import numpy as np

N_TOKENS = 20_000
N_CANDIDATES = 16  # settings.SHOWCASE_CANDIDATES' default
MULTIPLES = (2.0, 4.0)  # workers/showcases.py STRENGTH_MULTIPLES


def run() -> list[dict]:
    import torch

    from tests.bench._engine import demo_attached, one_torch_thread
    from workers.engine.corpus import iter_documents
    from workers.engine.facts import logit_effects
    from workers.engine.indexing import index_shard, make_windows
    from workers.engine.showcases import (
        DEFAULT_PROMPTS,
        Candidate,
        ShowcaseSettings,
        pick_showcases,
        score_candidates,
    )

    with one_torch_thread():
        att = demo_attached()
        windows = make_windows(att.lm, iter_documents("demo"), context=128, tokens=N_TOKENS)
        stats = index_shard(att, windows, log_max_bytes=1 << 30).finalize()
        seen = torch.zeros(att.lm.vocab_size, dtype=torch.bool)
        seen[torch.from_numpy(np.unique(windows.tokens).astype(np.int64))] = True
        top_ids, top_vals, _, _ = logit_effects(att, 10, vocab_mask=seen)
        weight = torch.from_numpy(np.asarray(stats.density, dtype=np.float32)) * top_vals[:, 0]
        weight[torch.from_numpy(np.asarray(stats.dead)) | (top_vals[:, 0] <= 0)] = -1.0
        chosen = weight.topk(N_CANDIDATES).indices.tolist()
        candidates = [
            Candidate(f, float(f"{float(stats.max[f]) * m:.3g}")) for f in chosen for m in MULTIPLES
        ]
        targets = {f: top_ids[f].tolist() for f in chosen}
        settings = ShowcaseSettings()
        t = time.perf_counter()
        scores = score_candidates(att, candidates, DEFAULT_PROMPTS, targets=targets)
        seconds = time.perf_counter() - t
    picked = pick_showcases(scores, 6)
    return [
        {
            "name": "showcases_seconds",
            "value": round(seconds, 1),
            "unit": "s",
            "target": None,
            "candidates": f"{N_CANDIDATES} features × {len(MULTIPLES)} strengths",
            "prompts": len(DEFAULT_PROMPTS),
            "new_tokens": settings.max_new_tokens,
            "rows": (len(candidates) + 1) * len(DEFAULT_PROMPTS),
            "qualifying_features": len(picked),
            "best": [(p.feature, p.strength, round(p.effect, 2)) for p in picked],
            "threads": 1,
        }
    ]
