"""The whole `index_sae` command on the demo model, through the real stack: its overhead over
the bare forward + encode, the speed-up from a second worker, and the cost of storing examples.

A fresh embedded PostgreSQL + Redis (temp var dir), real Celery workers (concurrency 1, one
torch thread each, so "2 workers" means the 2 cores), the demo model and SAE, the demo corpus.
The evaluation and showcases an index run queues after itself are off (tests/bench/_stack.py):
on the index queue they would run during the next timed command.

- index_overhead: wall time of `manage.py index_sae demo/demo --corpus demo --tokens 1000000`
  (queueing, the shard pass, merge, examples, weight facts, COPY and the swap) ÷ the bare
  forward to the hook layer + SAE encode over the same windows, in this process on one
  thread, already tokenized; the two alternate and the best of two of each is used. Target
  <= 1.30. The worker is warm (model loaded, map computed
  by a first small run) as a long-lived worker would be.
- index_shard_speedup_2: whole-command time with 1 worker and --shards 1 ÷ with 2 workers and
  --shards 2 (same corpus).
- ingest_examples_per_s: examples ÷ the COPY + swap time recorded on the run.
- bytes_per_example: size of the example table (heap + TOAST + indexes) ÷ its rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from explorer.core.supervisor import celery_worker_argv
from tests.bench._stack import bench_env, manage, spawn, stop

# Well above 200,000: the per-feature work (examples, facts, COPY) is fixed, so a short run
# would overstate the overhead.
TOKENS = 1_000_000
CONTEXT = 128
BATCH = 32


def _workers(env: dict[str, str], n: int, log_dir: Path) -> list[subprocess.Popen]:
    return [
        spawn(
            celery_worker_argv(
                queues="index",
                name=f"bench{i}-{os.getpid()}@%h",
                extra=("--without-mingle", "--without-gossip"),
            ),
            env,
            log_dir / f"worker{i}.log",
        )
        for i in range(n)
    ]


def _timed_index(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    manage(
        env,
        "index_sae",
        "demo/demo",
        "--corpus",
        "demo",
        "--context",
        str(CONTEXT),
        "--batch-size",
        str(BATCH),
        *args,
    )
    return time.perf_counter() - start


def _query(env: dict[str, str], code: str) -> dict:
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def _wait_for_map(env: dict[str, str], timeout: float = 300) -> None:
    code = (
        "import json; from explorer.saes.models import SAE; "
        "print(json.dumps({'n': SAE.objects.filter(map__isnull=True).count()}))"
    )
    deadline = time.monotonic() + timeout
    while _query(env, code)["n"] and time.monotonic() < deadline:
        time.sleep(2)


def _bare() -> Any:
    import torch

    from tests.bench._engine import demo_attached, hook_baseline_model, one_torch_thread
    from workers.engine.corpus import iter_documents
    from workers.engine.indexing import make_windows

    with one_torch_thread():
        att = demo_attached()
        windows = make_windows(att.lm, iter_documents("demo"), context=CONTEXT, tokens=TOKENS)
        cut = hook_baseline_model(att.lm, att.hook.layer)
        batches = [
            windows.batch(
                list(range(b, min(b + BATCH, len(windows)))), att.lm.pad_token_id, att.lm.device
            )
            for b in range(0, len(windows), BATCH)
        ]

        def bare() -> None:
            with torch.inference_mode():
                for ids, real in batches:
                    mask = None if bool(real.all()) else real.long()
                    hidden = cut(
                        input_ids=ids, attention_mask=mask, use_cache=False
                    ).last_hidden_state  # [b, pos, d]
                    att.sae.encode(hidden)

        bare()  # warm up

    def timed() -> float:
        with one_torch_thread():
            t = time.perf_counter()
            bare()
            return time.perf_counter() - t

    return timed, windows.n_tokens


def run() -> list[dict]:
    var_dir = Path(tempfile.mkdtemp(prefix="bench-index-"))
    workers: list[subprocess.Popen] = []
    try:
        env = bench_env(var_dir)
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "add_sae", "--model", "demo", "--sae", "demo")
        workers = _workers(env, 2, var_dir)
        # Warm-up: loads the model in both workers' children, computes the map once.
        _timed_index(env, "--tokens", "20000", "--shards", "2")
        _wait_for_map(env)
        stop(workers[1:])
        workers = workers[:1]

        timed_bare, n_tokens = _bare()
        bares, one = [], []
        for _ in range(2):  # alternate, so both see the same machine load
            bares.append(timed_bare())
            one.append(_timed_index(env, "--tokens", str(TOKENS)))
        bare = min(bares)
        stats = _query(
            env,
            (
                "import json; from django.db import connection; "
                "from explorer.saes.models import IndexRun; "
                "from explorer.saes.selectors import storage_bytes; "
                "r = IndexRun.objects.filter(status='done').order_by('-created').first(); "
                "s = storage_bytes(sae=r.sae); "
                "print(json.dumps({'timings': r.timings, 'examples': r.options['examples'], "
                "'size': s['examples'] + s['windows'], 'total': s['total'], "
                "'rows': s['n_examples']}))"
            ),
        )
        workers += _workers(env, 1, var_dir)
        time.sleep(3)
        _timed_index(env, "--tokens", "20000", "--shards", "2")  # warm the new worker
        two = [_timed_index(env, "--tokens", str(TOKENS), "--shards", "2") for _ in range(2)]
    finally:
        stop(workers)
        from explorer.core import embedded

        embedded.release_all()
        shutil.rmtree(var_dir, ignore_errors=True)
    t_one, t_two = min(one), min(two)
    meta = {"model": "demo", "corpus": "demo", "tokens": n_tokens}
    return [
        {
            "name": "index_overhead",
            "value": round(t_one / bare, 3),
            "unit": "ratio",
            "target": "<= 1.30",
            "command_s": round(t_one, 2),
            "bare_s": round(bare, 2),
            "phases_s": {k: round(v, 2) for k, v in stats["timings"].items()},
            **meta,
        },
        {
            "name": "index_shard_speedup_2",
            "value": round(t_one / t_two, 3),
            "unit": "ratio",
            "target": None,
            "one_worker_s": round(t_one, 2),
            "two_workers_s": round(t_two, 2),
            **meta,
        },
        {
            "name": "ingest_examples_per_s",
            "value": round(stats["examples"] / max(stats["timings"]["store_s"], 1e-9), 1),
            "unit": "examples/s",
            "target": None,
            "examples": stats["examples"],
        },
        {
            "name": "bytes_per_example",
            "value": round(stats["size"] / max(stats["rows"], 1), 1),
            "unit": "bytes",
            "target": None,
            "rows": stats["rows"],
            "with_features": round(stats["total"] / max(stats["rows"], 1), 1),
            "context": CONTEXT,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
