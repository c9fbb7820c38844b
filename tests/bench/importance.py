"""Feature importance under ablation on the demo model: its speed (reported, no target).

importance_features_per_min: features whose zero, mean and resample ablation loss deltas (and
moved tokens) are computed per minute by workers/engine/importance.py, in process on one CPU
thread, each on up to 32 of its example windows of 128 tokens (BOS included: half top
examples, half quantile samples), as the worker does. The windows come from an in-process index
of the demo SAE over 20,000 demo-corpus tokens; the features are the 48 live ones with the most
examples. The model and SAE are loaded before the clock starts.
"""

from __future__ import annotations

import json
import time

N_TOKENS = 20_000
N_FEATURES = 48


def run() -> list[dict]:
    from tests.bench._engine import demo_attached, one_torch_thread
    from workers.engine.corpus import iter_documents
    from workers.engine.importance import (
        DEFAULT_MAX_CONTEXTS,
        activation_pool,
        choose_contexts,
        feature_importance,
    )
    from workers.engine.indexing import index_shard, make_windows
    from workers.engine.interventions import FeatureStats

    with one_torch_thread():
        att = demo_attached()
        windows = make_windows(att.lm, iter_documents("demo"), context=128, tokens=N_TOKENS)
        stats = index_shard(att, windows, log_max_bytes=1 << 30).finalize()
        top: dict[int, list] = {}
        bins: dict[int, dict[int, list]] = {}
        for ref in stats.example_refs():
            ids = windows[ref.window].token_ids.tolist()
            if ref.kind == "top":
                top.setdefault(ref.feature, []).append(ids)
            else:
                bins.setdefault(ref.feature, {}).setdefault(ref.bin, []).append(ids)
        chosen = sorted(top, key=lambda f: -len(top[f]) - sum(map(len, bins.get(f, {}).values())))
        chosen = sorted(chosen[:N_FEATURES])
        contexts = {
            f: choose_contexts(top[f], [b for _, b in sorted(bins.get(f, {}).items())])
            for f in chosen
        }
        feature_stats = {}
        for f in chosen:  # as the worker builds them from the stored Feature row
            edges, counts = stats.histogram(f)
            feature_stats[f] = FeatureStats(
                mean=float(stats.density[f] * stats.mean[f]),
                samples=activation_pool(
                    density=float(stats.density[f]),
                    hist_edges=edges.tolist(),
                    hist_counts=counts.tolist(),
                    seed=f,
                ),
            )
        t = time.perf_counter()
        results = feature_importance(att, contexts, stats=feature_stats)
        seconds = time.perf_counter() - t
    n_ctx = [r.n_contexts for r in results]
    return [
        {
            "name": "importance_features_per_min",
            "value": round(len(results) / seconds * 60, 1),
            "unit": "features/min",
            "target": None,
            "features": len(results),
            "contexts_per_feature": f"{min(n_ctx)}-{max(n_ctx)} (max {DEFAULT_MAX_CONTEXTS})",
            "tokens_per_context": 128,
            "methods": ["zero", "mean", "resample"],
            "threads": 1,
            "seconds": round(seconds, 2),
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
