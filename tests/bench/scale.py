"""The real shape through the whole stack: a GPT-2-small-shaped model and a 24,576-latent
JumpReLU SAE on ``blocks.8.hook_resid_pre`` (tests/bench/_scale_assets.py: random weights,
built locally and cached under var/bench/scale/), registered with ``manage.py add_sae`` and
indexed with ``manage.py index_sae`` over 100,000 demo-corpus tokens like any SAE.

A fresh embedded PostgreSQL + Redis (temp var dir), one Celery worker on the index queue
(concurrency 1, one torch thread, as in the `index` group), uvicorn for the pages. The SAE's
quality evaluation and showcases, which the index run queues after itself, are switched off:
they are follow-ups of their own and would hold the one worker during the second run.

- scale_index_overhead: the second (warm worker) index command's seconds ÷ the bare forward
  to the hook + ``sae.encode`` over the same windows (same context and batch), in this
  process on one thread. Target <= 1.15. The second run keeps the first's weight facts (same
  weights and corpus tokens: ``facts_reused``); the first run's seconds are reported beside.
- scale_index_peak_rss_gb: the worker's peak RSS (VmHWM of its processes) over the first
  index run, model loading included. Target <= 3.
- scale_bytes_per_example: on-disk bytes (heap + TOAST + indexes, partitions included) of
  the relations named ``saes_example%`` and ``saes_indexwindow%`` ÷ the run's examples, after
  the first run. The features' bytes (``saes_feature%``) are reported beside it. Target <= 300.
- scale_reindex_growth: those bytes plus the features' after a second identical run ÷ after
  the first. Target <= 1.1.
- scale_map_ready_s: from the first index command's return to the SAE page's map data
  (``/<model>/<sae>/map.json``) having coordinates for every feature (and labels, when the
  response carries any). Target <= 90.
- scale_feature_page_p95_ms / scale_feature_json_p95_ms: 50 random live features' HTML page
  and API JSON, one request each, sequential, keep-alive. Targets <= 100 / <= 50.
- scale_index_tokens_per_s: tokens ÷ the warm index command's seconds (report only).
- scale_decode_ms_per_step_b1: greedy decoding with a KV cache, batch 1, one thread (report).

``BENCH_SCALE_MINI=1`` runs the same on the mini shape (2-4 minutes on the shared machine).
The full shape costs three passes of GPT-2-small to layer 8 + a 24,576-wide encode over
100,000 tokens on one thread (~5 minutes each on an idle core), two logit-effect passes over
the 50,257-token vocabulary, the map and the asset build (once): about 20 minutes idle, 37
minutes measured under load. Each phase is noted on stderr as it ends.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

from explorer.core.supervisor import celery_worker_argv, web_server_argv
from tests.bench._scale_assets import ScaleAssets, build_scale_assets, corpus_documents
from tests.bench._stack import bench_env, manage, spawn, stop, wait_http

TOKENS = 100_000
MINI_TOKENS = 20_000
CONTEXT = 128
BATCH = 32
PAGES = 50
MAP_TIMEOUT_S = 600
MODEL_SLUG = "scale"
SAE_SLUG = "res-jumprelu"

# Relations measured, as LIKE patterns (underscores escaped): whatever the storage layout
# calls its tables, as long as the names keep these prefixes.
EXAMPLE_PATTERNS = (r"saes\_example%", r"saes\_indexwindow%")
FEATURE_PATTERNS = (r"saes\_feature%",)
RELATIONS = {"examples": list(EXAMPLE_PATTERNS), "features": list(FEATURE_PATTERNS)}
SIZE_SQL = r"""
WITH matched AS (
    SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')
      AND c.relname LIKE ANY (%s)
), rels AS (
    SELECT oid FROM matched WHERE relkind <> 'p'
    UNION
    SELECT t.relid FROM matched m, pg_partition_tree(m.oid) t WHERE m.relkind = 'p' AND t.isleaf
)
SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM rels
"""


# -- the stack ---------------------------------------------------------------------------------


def _note(t0: float, message: str) -> None:
    sys.stderr.write(f"scale [{time.perf_counter() - t0:7.1f} s] {message}\n")
    sys.stderr.flush()


class PeakRss:
    """The largest VmHWM (peak RSS) seen among a process and its descendants, sampled on a
    thread: a pool child may be replaced, so the tree is read again at every sample."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        import psutil

        try:
            procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                status = Path(f"/proc/{p.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- measurements --------------------------------------------------------------------------------


def _corpus_spec(var_dir: Path, corpus: str) -> str:
    """``demo`` when installed; else the assets' corpus written as a .jsonl file."""
    if corpus == "demo":
        return "demo"
    path = var_dir / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for doc in corpus_documents(corpus):
            fh.write(json.dumps(doc) + "\n")
    return str(path)


def _timed_index(env: dict[str, str], corpus: str, tokens: int) -> float:
    start = time.perf_counter()
    manage(
        env,
        "index_sae",
        f"{MODEL_SLUG}/{SAE_SLUG}",
        "--corpus",
        corpus,
        "--tokens",
        str(tokens),
        "--context",
        str(CONTEXT),
        "--batch-size",
        str(BATCH),
    )
    return time.perf_counter() - start


def _snapshot(env: dict[str, str]) -> dict[str, Any]:
    """One Django shell on the bench database: the newest finished run's options and timings,
    and the bytes of the example relations (+ windows) and of the feature relations."""
    code = f"""
import json
from django.db import connection
from explorer.saes.models import IndexRun
run = IndexRun.objects.filter(status="done").order_by("-created").first()
sizes = {{}}
with connection.cursor() as c:
    for key, patterns in {RELATIONS!r}.items():
        c.execute({SIZE_SQL!r}, [patterns])
        sizes[key] = int(c.fetchone()[0])
print(json.dumps({{"options": run.options, "timings": run.timings, "bytes": sizes}}))
"""
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def _get_json(conn: http.client.HTTPConnection, path: str) -> tuple[int, Any]:
    conn.request("GET", path, headers={"Accept": "application/json"})
    response = conn.getresponse()
    body = response.read()
    return response.status, (json.loads(body) if response.status == 200 else None)


def _labels(payload: Any) -> list | None:
    """Every value under a key naming labels, anywhere in the map data (None: no such key)."""
    found: list | None = None
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if "label" in key.lower():
                    found = (found or []) + (value if isinstance(value, list) else [value])
                else:
                    stack.append(value)
        elif isinstance(item, list) and item and isinstance(item[0], dict | list):
            stack.extend(item)
    return found


def map_ready(payload: Any, d_sae: int) -> bool:
    """Coordinates for every feature, and at least one label when the data has labels."""
    points = (payload or {}).get("points") or {}
    xs, ys = points.get("x") or [], points.get("y") or []
    if len(xs) < d_sae or any(v is None for v in xs) or any(v is None for v in ys):
        return False
    labels = _labels({k: v for k, v in payload.items() if k != "points"} | points)
    return labels is None or any(bool(v) for v in labels)


def _wait_map(port: int, d_sae: int, timeout: float) -> tuple[float, dict]:
    """Seconds until map.json is ready, polled every 0.5 s, and the last payload."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload: dict = {}
    while time.perf_counter() - start < timeout:
        status, body = _get_json(conn, f"/{MODEL_SLUG}/{SAE_SLUG}/map.json")
        if status == 200:
            payload = body
            if map_ready(body, d_sae):
                return time.perf_counter() - start, payload
        time.sleep(0.5)
    raise RuntimeError(f"the map was not served within {timeout:.0f} s")


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 else 0


def _page_times(port: int, indices: list[int], warm: list[int]) -> tuple[list, list]:
    """Milliseconds of each feature's HTML page and of its API JSON (one request each),
    after a request for each of ``warm`` (the first ones pay for imports and caches)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    html: list[float] = []
    api: list[float] = []
    base = f"/{MODEL_SLUG}/{SAE_SLUG}"
    for out, path in (
        (html, base + "/{}/"),
        (api, f"/api/v1/models/{MODEL_SLUG}/saes/{SAE_SLUG}/features/{{}}"),
    ):
        for i in warm + indices:
            start = time.perf_counter()
            conn.request("GET", path.format(i))
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path.format(i)} answered {response.status}")
            if i in indices:
                out.append((time.perf_counter() - start) * 1000)
    return html, api


def _bare_and_decode(assets: ScaleAssets, corpus: str, tokens: int) -> tuple[float, int, float]:
    """(bare seconds, window tokens, decode ms/step at batch 1), in this process, one thread."""
    import torch

    from tests.bench._engine import one_torch_thread
    from tests.bench._scale_measure import bare_pass, decode_ms_per_step
    from workers.engine.corpus import iter_documents
    from workers.engine.indexing import make_windows
    from workers.engine.loading import attach_sae, load_model, load_sae

    with one_torch_thread():
        lm = load_model(str(assets.model_dir), device="cpu", dtype="fp32")
        att = attach_sae(lm, load_sae(str(assets.sae_dir), device="cpu"))
        windows = make_windows(lm, iter_documents(corpus), context=CONTEXT, tokens=tokens)
        bare = bare_pass(att, windows, BATCH)
        seconds = bare()
        decode = decode_ms_per_step(
            lm.model, batch=1, steps=32, vocab=lm.vocab_size, device=torch.device("cpu")
        )
    return seconds, windows.n_tokens, decode


def run() -> list[dict]:
    t0 = time.perf_counter()
    assets = build_scale_assets()
    _note(t0, f"assets {assets.root} ({'built' if assets.built else 'cached'})")
    tokens = MINI_TOKENS if assets.recipe.name == "mini" else TOKENS
    d_sae = assets.recipe.d_sae
    var_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    procs: list[subprocess.Popen] = []
    try:
        env = bench_env(
            var_dir,
            STATIC_ROOT=str(var_dir / "static"),
            DEBUG="false",
            HTTPS="false",
        )
        corpus = _corpus_spec(var_dir, assets.corpus)
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        manage(
            env,
            "add_sae",
            "--model",
            str(assets.model_dir),
            "--sae",
            str(assets.sae_dir),
            "--model-slug",
            MODEL_SLUG,
            "--slug",
            SAE_SLUG,
        )
        from explorer.core.embedded import free_port

        port = free_port()
        worker = spawn(
            celery_worker_argv(
                queues="index",
                name=f"bench-scale-{os.getpid()}@%h",
                extra=("--without-mingle", "--without-gossip"),
            ),
            env,
            var_dir / "worker.log",
        )
        procs.append(worker)
        procs.append(spawn(web_server_argv(host="127.0.0.1", port=port), env, var_dir / "web.log"))
        wait_http(port, "/healthz", procs[-1])
        _note(t0, "stack up, SAE registered")

        with PeakRss(worker.pid) as rss:
            t_first = _timed_index(env, corpus, tokens)
        _note(t0, f"first index run: {t_first:.1f} s")
        map_s, _ = _wait_map(port, d_sae, MAP_TIMEOUT_S)
        _note(t0, f"map served after {map_s:.1f} s")
        facts = _snapshot(env)
        first = facts["bytes"]
        bare, n_tokens, decode_ms = _bare_and_decode(assets, corpus, tokens)
        _note(t0, f"bare pass: {bare:.1f} s")
        t_second = _timed_index(env, corpus, tokens)
        _note(t0, f"second index run: {t_second:.1f} s")
        facts2 = _snapshot(env)
        second = facts2["bytes"]

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        _, payload = _get_json(conn, f"/{MODEL_SLUG}/{SAE_SLUG}/map.json")
        points = payload["points"]
        live = [i for i, dead in zip(points["index"], points["dead"], strict=True) if not dead]
        densities = points["density"]
        chosen = random.Random(0).sample(live, min(PAGES + 2, len(live)))
        html_ms, json_ms = _page_times(port, chosen[2:], chosen[:2])
    finally:
        stop(procs)
        from explorer.core import embedded

        embedded.release_all()
        shutil.rmtree(var_dir, ignore_errors=True)

    examples = int(facts["options"].get("examples") or 0)
    meta = {
        "shape": assets.recipe.name,
        "d_sae": d_sae,
        "hook": assets.hook_name,
        "corpus": corpus if corpus == "demo" else "repo-text",
        "tokens": n_tokens,
        "context": CONTEXT,
        "batch": BATCH,
    }
    total_first = first["examples"] + first["features"]
    total_second = second["examples"] + second["features"]
    return [
        {
            "name": "scale_index_overhead",
            "value": round(t_second / bare, 3),
            "unit": "ratio",
            "target": "<= 1.15",
            "command_s": round(t_second, 2),
            "cold_command_s": round(t_first, 2),
            "bare_s": round(bare, 2),
            # weight facts the second run kept from the first (same weights and tokens)
            "facts_reused": facts2["options"].get("facts_reused"),
            "phases_s": {k: round(v, 2) for k, v in (facts2.get("timings") or {}).items()},
            **meta,
        },
        {
            "name": "scale_index_peak_rss_gb",
            "value": round(rss.peak_kb / 2**20, 3),
            "unit": "GiB",
            "target": "<= 3",
            **meta,
        },
        {
            "name": "scale_bytes_per_example",
            "value": round(first["examples"] / max(examples, 1), 1),
            "unit": "bytes",
            "target": "<= 300",
            "examples": examples,
            "example_bytes": first["examples"],
            "feature_bytes": first["features"],
            "feature_bytes_per_feature": round(first["features"] / d_sae, 1),
            **meta,
        },
        {
            "name": "scale_reindex_growth",
            "value": round(total_second / max(total_first, 1), 3),
            "unit": "ratio",
            "target": "<= 1.1",
            "bytes_first": total_first,
            "bytes_second": total_second,
            **meta,
        },
        {
            "name": "scale_map_ready_s",
            "value": round(map_s, 2),
            "unit": "s",
            "target": "<= 90",
            **meta,
        },
        {
            "name": "scale_feature_page_p95_ms",
            "value": round(_p95(html_ms), 1),
            "unit": "ms",
            "target": "<= 100",
            "median_ms": round(statistics.median(html_ms), 1),
            "pages": len(html_ms),
            **meta,
        },
        {
            "name": "scale_feature_json_p95_ms",
            "value": round(_p95(json_ms), 1),
            "unit": "ms",
            "target": "<= 50",
            "median_ms": round(statistics.median(json_ms), 1),
            "pages": len(json_ms),
            **meta,
        },
        {
            "name": "scale_index_tokens_per_s",
            "value": round(n_tokens / t_second, 1),
            "unit": "tokens/s",
            "target": None,
            "live_features": len(live),
            "mean_density": round(statistics.fmean(densities), 6) if densities else None,
            **meta,
        },
        {
            "name": "scale_decode_ms_per_step_b1",
            "value": round(decode_ms, 2),
            "unit": "ms",
            "target": None,
            "shape": assets.recipe.name,
            "threads": 1,
        },
        {
            "name": "scale_assets_build_s",
            "value": round(assets.build_s, 2),
            "unit": "s",
            "target": None,
            "built_now": assets.built,
            "phases_s": assets.phases_s,
            "digest": assets.digest,
            "group_s": round(time.perf_counter() - t0, 1),
            "shape": assets.recipe.name,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
