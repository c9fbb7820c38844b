"""The offline explainer's speed on the demo SAE (no LLM needed).

offline_explain_features_per_s: features labelled per second by the offline explainer
(workers/engine/explain.py via workers.index.offline_labels), from the top examples and logit
effects of an in-process index of the demo SAE over 50,000 demo-corpus tokens. Target >= 1000.
"""

from __future__ import annotations

import json
import time

N_TOKENS = 50_000


def run() -> list[dict]:
    import os

    import django

    # workers.index reads and writes through explorer services: Django must be set up first
    # (no database is touched here).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
    django.setup()

    from tests.bench._engine import demo_attached, one_torch_thread
    from workers.engine.corpus import iter_documents
    from workers.engine.indexing import index_shard, make_windows
    from workers.index import offline_labels, weight_facts

    with one_torch_thread():
        att = demo_attached()
        windows = make_windows(att.lm, iter_documents("demo"), context=128, tokens=N_TOKENS)
        acc = index_shard(att, windows)
        stats = acc.finalize()
        n_examples = len(stats.example_refs())
        facts = weight_facts(att, windows)
        vocab = att.lm.vocab_strings()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            labels = offline_labels(stats, windows, facts, vocab)
            times.append(time.perf_counter() - t)
    best = min(times)
    return [
        {
            "name": "offline_explain_features_per_s",
            "value": round(len(labels) / best, 1),
            "unit": "features/s",
            "target": ">= 1000",
            "features": len(labels),
            "examples": n_examples,
            "sample": labels[int(stats.count.argmax())],
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
