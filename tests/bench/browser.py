"""Browser benchmarks: the feature browser and JSON API on a synthetic SAE of
production size, served by the real ASGI server (uvicorn) and hit from a loopback client.

Data: tests/bench/_synthetic_db.py writes BENCH_BROWSER_FEATURES features (default 250,000) x
BENCH_BROWSER_EXAMPLES examples (25) of BENCH_BROWSER_CONTEXT tokens (64), one explanation per
feature, into its own embedded PostgreSQL under var/bench/ (database `bench_browser`). The
database is kept and reused by later runs with the same sizes (generation takes minutes);
BENCH_BROWSER_REGENERATE=1 forces a new one. Reported: row counts, database size, generation
time (of the run that made it).

Load: `CLIENTS` keep-alive HTTP/1.1 connections (threads) in parallel, `REQUESTS` timed
requests per figure after `WARMUP` untimed ones; each request picks a random feature / query /
deep cursor. Latency is the client-side time to the last byte. BENCH_BROWSER_ONLY=a,b limits
the run to those figures (names without _p95_ms).

- feature_json_p95_ms: GET /api/v1/models/bench/saes/res/features/<random index>   (<= 50)
- feature_page_p95_ms: GET /bench/res/<random index>/ (the HTML feature page)       (<= 100)
- search_explanations_p95_ms: GET /api/v1/search?q=<1-2 explanation words>&mode=explanation (<= 100)
- sae_table_page_p95_ms: GET /bench/res/?sort=density|max&after=<cursor of a random feature>,
  a sorted page anywhere in the table, keyset cursor (<= 100)
- sae_table_json_p95_ms: the same through GET /api/v1/.../features?sort=-density&cursor=...
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "var" / "bench"
DATABASE = "bench_browser"
CLIENTS = int(os.environ.get("BENCH_BROWSER_CLIENTS", "2"))
REQUESTS = int(os.environ.get("BENCH_BROWSER_REQUESTS", "300"))
WARMUP = 30


def _sizes() -> dict[str, int]:
    return {
        "features": int(os.environ.get("BENCH_BROWSER_FEATURES", "250000")),
        "examples": int(os.environ.get("BENCH_BROWSER_EXAMPLES", "25")),
        "context": int(os.environ.get("BENCH_BROWSER_CONTEXT", "64")),
    }


def _log(msg: str) -> None:
    sys.stderr.write(f"[bench browser] {msg}\n")
    sys.stderr.flush()


def _prepare_database(pg, env: dict[str, str]) -> dict:
    """Create, migrate and fill `bench_browser` unless a database of the same sizes exists;
    the generation report is kept in a table of its own."""
    import psycopg

    from tests.bench import _synthetic_db

    sizes = _sizes()
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
    url = pg.url(DATABASE)
    if exists and os.environ.get("BENCH_BROWSER_REGENERATE") != "1":
        with psycopg.connect(url) as conn:
            try:
                row = conn.execute("SELECT sizes, report FROM bench_stamp").fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
        if row is not None and row[0] == sizes:
            _log(f"reusing {DATABASE} ({sizes}); migrating it to the current schema")
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=REPO,
                env=env,
                check=True,
            )
            return row[1]
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    _log("migrating")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    _log(f"generating {sizes}")
    report = _synthetic_db.generate(url, **sizes, log=_log)
    report_dict = {
        "features": report.features,
        "examples": report.examples,
        "explanations": report.explanations,
        "database_mb": report.database_mb,
        "seconds": report.seconds,
        "phases": report.phases,
    }
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_stamp (sizes jsonb, report jsonb)")
        conn.execute(
            "INSERT INTO bench_stamp VALUES (%s, %s)", [json.dumps(sizes), json.dumps(report_dict)]
        )
    _log(f"generated: {report_dict}")
    return report_dict


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(env: dict[str, str], port: int) -> subprocess.Popen:
    from explorer.core.supervisor import web_server_argv
    from tests.helpers import wait_http

    server = subprocess.Popen(
        web_server_argv(host="127.0.0.1", port=port),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", process=server)
    return server


def _stop(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)


def _load(port: int, paths, *, requests: int = REQUESTS, clients: int = CLIENTS) -> dict:
    """Run `requests` GETs (paths() gives each one) over `clients` keep-alive connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    todo = iter(range(requests + WARMUP * clients))
    started = time.monotonic()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        done = 0
        while True:
            with lock:
                if next(todo, None) is None:
                    break
            path = paths()
            t = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - t
            done += 1
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if done > WARMUP:
                    latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "p50": pct(0.50),
        "p95": pct(0.95),
        "rps": round((requests + WARMUP * clients) / wall, 1),
        "statuses": statuses,
    }


def _cursor_samples(url: str, n: int = 400) -> list[tuple[int, float, float]]:
    """(index, density, max_activation) of random features: deep page positions."""
    import psycopg

    with psycopg.connect(url) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT f.index, f.density, f.max_activation"
                " FROM saes_feature f JOIN saes_sae s ON s.id = f.sae_id"
                " WHERE s.slug = 'res' ORDER BY random() LIMIT %s",
                [n],
            )
        ]


def run() -> list[dict]:
    from explorer.core import embedded
    from tests.bench._synthetic_db import EXPLANATION_WORDS, word

    pg = embedded.EmbeddedPostgres(ROOT)
    redis = embedded.EmbeddedRedis(ROOT, port=embedded.free_port())
    embedded.acquire(pg)
    try:
        embedded.acquire(redis)
        try:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.endswith("_URL") and not k.endswith("_URL_FILE")
            }
            env.update(
                DATABASE_URL=pg.url(DATABASE),
                REDIS_URL=redis.url(),
                DJANGO_SETTINGS_MODULE="explorer.settings",
                DEBUG="false",
                HTTPS="false",
                STATIC_ROOT=str(ROOT / "static"),
                SECRET_KEY="bench-" + "k" * 60,
                EXPLORER_VAR_DIR=str(ROOT),
                PYTHONUNBUFFERED="1",
                # The export figure measures the stream, anonymously (exports need an account
                # by default; tests/bench/_hardening_export.py exports as one).
                EXPORTS_OPEN="true",
            )
            report = _prepare_database(pg, env)
            # Pages link hashed static names (manifest storage, as in production).
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                cwd=REPO,
                env=env,
                check=True,
            )
            figures = _measure(env, pg.url(DATABASE), report, EXPLANATION_WORDS, word)
        finally:
            embedded.release(redis)
    finally:
        embedded.release(pg)
    return figures


def _measure(env: dict[str, str], url: str, report: dict, n_words: int, word) -> list[dict]:
    rng = random.Random(0)
    paths = _path_makers(rng, report["features"], _cursor_samples(url), n_words, word)
    port = _free_port()
    server = _serve(env, port)
    try:
        results, export = _run_loads(port, server.pid, paths)
    finally:
        _stop(server)
    return _synthetic_figures(report) + _latency_figures(results) + _export_figures(export)


def _path_makers(
    rng: random.Random, n: int, samples: list[tuple], n_words: int, word
) -> dict[str, Callable[[], str]]:
    """Per load: a function giving the next URL path to request, drawn from `rng`."""
    base = "/api/v1/models/bench/saes/res"

    def feature_json() -> str:
        return f"{base}/features/{rng.randrange(n)}"

    def feature_page() -> str:
        return f"/bench/res/{rng.randrange(n)}/"

    def search() -> str:
        q = " ".join(word(rng.randrange(n_words)) for _ in range(rng.choice((1, 2))))
        return "/api/v1/search?" + urllib.parse.urlencode(
            {"q": q, "model": "bench", "sae": "res", "mode": "explanation"}
        )

    vocab_words = [word(i) for i in range(0, 40_000, 7)]

    def token_search() -> str:
        return "/api/v1/search?" + urllib.parse.urlencode(
            {"q": f"token:{rng.choice(vocab_words)}", "model": "bench", "sae": "res"}
        )

    def table_page() -> str:
        index, density, max_act = rng.choice(samples)
        if rng.random() < 0.5:
            return "/bench/res/?" + urllib.parse.urlencode(
                {"sort": "density", "after": f"{density!r}~{index}"}
            )
        return "/bench/res/?" + urllib.parse.urlencode(
            {"sort": "max", "after": f"{max_act!r}~{index}"}
        )

    def table_json() -> str:
        index, density, _ = rng.choice(samples)
        cursor = (
            base64.urlsafe_b64encode(json.dumps([density, index]).encode()).decode().rstrip("=")
        )
        return f"{base}/features?" + urllib.parse.urlencode(
            {"sort": "-density", "cursor": cursor, "limit": 50}
        )

    return {
        "feature_json": feature_json,
        "feature_page": feature_page,
        "search_explanations": search,
        "search_tokens": token_search,
        "sae_table_page": table_page,
        "sae_table_json": table_json,
    }


def _run_loads(
    port: int, pid: int, paths: dict[str, Callable[[], str]]
) -> tuple[dict[str, dict], dict | None]:
    """Each load's latencies by name, then the export's figures (None when not run); the
    names in BENCH_BROWSER_ONLY (comma-separated, "export" included) restrict what runs."""
    only = set(filter(None, os.environ.get("BENCH_BROWSER_ONLY", "").split(",")))
    results = {}
    for name, next_path in paths.items():
        if only and name not in only:
            continue
        results[name] = _load(port, next_path)
        # This machine is shared: the load beside the run says how far to trust a figure.
        results[name]["load_avg_1m"] = round(os.getloadavg()[0], 1)
        _log(f"{name}: {results[name]}")
    export = None
    if not only or "export" in only:
        export = _export_features(port, pid)
        _log(f"export: {export}")
    return results, export


def _synthetic_figures(report: dict) -> list[dict]:
    return [
        {"name": "synthetic_features", "value": report["features"], "unit": "rows", "target": None},
        {"name": "synthetic_examples", "value": report["examples"], "unit": "rows", "target": None},
        {
            "name": "synthetic_explanations",
            "value": report["explanations"],
            "unit": "rows",
            "target": None,
        },
        {
            "name": "synthetic_db_size_mb",
            "value": report["database_mb"],
            "unit": "MiB",
            "target": None,
        },
        {
            "name": "synthetic_db_generate_s",
            "value": report["seconds"],
            "unit": "s",
            "target": None,
            "phases": report["phases"],
        },
    ]


LATENCY_TARGETS = {
    "feature_json": "<= 50",
    "feature_page": "<= 100",
    "search_explanations": "<= 100",
    "search_tokens": None,
    "sae_table_page": "<= 100",
    "sae_table_json": "<= 100",
}


def _latency_figures(results: dict[str, dict]) -> list[dict]:
    figures = []
    for name, r in results.items():
        ok = sum(v for k, v in r["statuses"].items() if k == 200)
        figure = {
            "name": f"{name}_p95_ms",
            "value": r["p95"],
            "unit": "ms",
            "target": LATENCY_TARGETS[name],
            "p50_ms": r["p50"],
            "rps": r["rps"],
            "clients": CLIENTS,
            "load_avg_1m": r["load_avg_1m"],
            "ok": ok,
            "statuses": {str(k): v for k, v in r["statuses"].items()},
        }
        if ok < sum(r["statuses"].values()):  # the latency of error pages says nothing
            figure.update(
                value=None, error=f"{sum(r['statuses'].values()) - ok} responses were not 200"
            )
        figures.append(figure)
    return figures


def _export_figures(export: dict | None) -> list[dict]:
    if export is None:
        return []
    return [
        {
            "name": "export_features_csv_s",
            "value": export["seconds"],
            "unit": "s",
            "target": None,
            "bytes": export["bytes"],
        },
        {
            "name": "export_server_rss_growth_mib",
            "value": export["rss_growth_mib"],
            "unit": "MiB",
            "target": None,
        },
    ]


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _export_features(port: int, pid: int) -> dict:
    """Download every feature as CSV; the server's peak memory must not grow with the SAE."""
    before = _rss_kib(pid, "VmRSS")
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/api/v1/models/bench/saes/res/export/features?format=csv")
    response = conn.getresponse()
    size = 0
    while chunk := response.read(1 << 16):
        size += len(chunk)
    conn.close()
    peak = _rss_kib(pid, "VmHWM")
    return {
        "seconds": round(time.monotonic() - started, 1),
        "bytes": size,
        "rss_growth_mib": round(max(0, peak - before) / 1024, 1),
    }
