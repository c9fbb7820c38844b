"""Part of the hardening bench group (see ``hardening.py``): what one export costs the pages
served beside it.

The stack is the demo's own (`manage.py demo` in a fresh var dir under /tmp, indexing the demo
SAE over BENCH_EXPORT_INDEX_TOKENS tokens, 200,000 as `make demo` does), so the export is the
real one: every example of the demo SAE as JSON (~170 MB). An account with an API key is made
with `manage.py shell`. Once indexing and its follow-up work are done and the stack is idle:

- quiet: PAGES sequential GETs of random feature pages (/demo/demo/<index>/), after WARMUP;
- loaded: the same while one client streams the examples export as fast as it reads, the
  export started again whenever it ends (the account's limit allows one at a time);
- quiet again, so that a drift of the shared machine shows up in both sides.

- export_page_slowdown: p50 of the loaded pages ÷ p50 of the quiet ones            (<= 2)
- export_s / export_mb: one whole export, its time and size                      (report)
- export_web_rss_growth_mb: the web server's largest resident size during the export minus
  before it: the stream's memory stays bounded whatever the export's size         (report)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
PAGES = int(os.environ.get("BENCH_EXPORT_PAGES", "60"))
WARMUP = 10
INDEX_TOKENS = int(os.environ.get("BENCH_EXPORT_INDEX_TOKENS", "200000"))
EXPORT = "/api/v1/models/demo/saes/demo/export/examples?format=json"

MAKE_KEY = """
from django.contrib.auth import get_user_model
from explorer.accounts.services import api_key_create
user, _ = get_user_model().objects.get_or_create(username="bench-export")
print(api_key_create(user=user, name="bench")[1])
"""


def _log(msg: str) -> None:
    sys.stderr.write(f"[bench export] {msg}\n")
    sys.stderr.flush()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)]
        + ["--index-tokens", str(INDEX_TOKENS)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def indexed() -> bool:
        if demo.poll() is not None:
            raise RuntimeError(f"demo exited with {demo.returncode}")
        try:
            page = _get_json(port, "/api/v1/models/demo/saes/demo/features?limit=1")
        except OSError:
            return False
        return bool(page.get("items"))

    wait_until(indexed, timeout=900, interval=2, message="the demo SAE was never indexed")
    return demo


def _stop(demo: subprocess.Popen) -> None:
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(10)


def _wait_idle(demo: subprocess.Popen, *, below: float = 15.0, quiet_s: float = 5.0) -> None:
    """Until the demo's processes (web, workers, servers) use under `below` % CPU for
    `quiet_s` seconds in a row: indexing's follow-up work (map, labels) is done."""
    import psutil

    root = psutil.Process(demo.pid)
    calm_since = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        procs = [root, *root.children(recursive=True)]
        for p in procs:
            try:
                p.cpu_percent(None)
            except psutil.Error:
                pass
        time.sleep(1.0)
        total = 0.0
        for p in procs:
            try:
                total += p.cpu_percent(None)
            except psutil.Error:
                pass
        if total < below:
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= quiet_s:
                return
        else:
            calm_since = None
    _log("the stack never went idle; measuring anyway")


def _web_process(demo: subprocess.Popen):
    import psutil

    for child in psutil.Process(demo.pid).children(recursive=True):
        if "uvicorn" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("no uvicorn among the demo's children")


def _pages(port: int, d_sae: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for i in range(n + WARMUP):
        t = time.perf_counter()
        conn.request("GET", f"/demo/demo/{random.randrange(d_sae)}/")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"feature page answered {response.status}")
        if i >= WARMUP:
            out.append(time.perf_counter() - t)
    conn.close()
    return out


class Exporter(threading.Thread):
    """Streams the examples export with `key` as fast as it reads, again and again."""

    def __init__(self, port: int, key: str, web) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.web = port, key, web
        self.stop = threading.Event()
        self.streaming = threading.Event()
        self.runs: list[tuple[float, int]] = []  # (seconds, bytes) of whole exports
        self.rss_before = web.memory_info().rss
        self.rss_peak = self.rss_before
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self._one()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            self.error = repr(exc)
            self.streaming.set()

    def _one(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        started = time.perf_counter()
        conn.request("GET", EXPORT, headers={"Authorization": f"Bearer {self.key}"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read()[:300]!r}")
        size, chunks = 0, 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            chunks += 1
            self.streaming.set()
            if chunks % 64 == 0:
                self.rss_peak = max(self.rss_peak, self.web.memory_info().rss)
            if self.stop.is_set():
                conn.close()
                return
        conn.close()
        self.runs.append((time.perf_counter() - started, size))


def _p50(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def run() -> list[dict[str, Any]]:
    var_dir = Path(tempfile.mkdtemp(prefix="sfe-bench-export-"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(
        EXPLORER_VAR_DIR=str(var_dir),
        STATIC_ROOT=str(var_dir / "static"),
        # Only what the pages show: no evaluation or showcases queued after indexing.
        SAE_EVAL_AFTER_INDEX_TOKENS="0",
        SHOWCASE_CANDIDATES="0",
    )
    port = _free_port()
    _log(f"starting the demo in {var_dir}, indexing {INDEX_TOKENS:,} tokens")
    demo = _start(env, port)
    try:
        key = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", MAKE_KEY],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        d_sae = _get_json(port, "/api/v1/models/demo/saes/demo")["d_sae"]
        _wait_idle(demo)
        _log("measuring quiet pages")
        quiet = _pages(port, d_sae, PAGES // 2)
        exporter = Exporter(port, key, _web_process(demo))
        exporter.start()
        exporter.streaming.wait(120)
        if exporter.error:
            raise RuntimeError(exporter.error)
        _log("measuring pages beside an export")
        loaded = _pages(port, d_sae, PAGES)
        if exporter.error:
            raise RuntimeError(exporter.error)
        while not exporter.runs and exporter.is_alive() and not exporter.error:
            time.sleep(0.5)  # one whole export, for its time and size
        exporter.stop.set()
        exporter.join(120)
        if exporter.error:
            raise RuntimeError(exporter.error)
        _wait_idle(demo)
        _log("measuring quiet pages again")
        quiet += _pages(port, d_sae, PAGES // 2)
    finally:
        _stop(demo)
        shutil.rmtree(var_dir, ignore_errors=True)
    export_s, export_bytes = exporter.runs[0]
    q50, l50 = _p50(quiet), _p50(loaded)
    _log(f"quiet p50 {1000 * q50:.1f} ms, beside an export {1000 * l50:.1f} ms")
    return [
        {
            "name": "export_page_slowdown",
            "value": round(l50 / q50, 2),
            "unit": "ratio",
            "target": "<= 2",
        },
        {"name": "export_s", "value": round(export_s, 1), "unit": "s", "target": None},
        {"name": "export_mb", "value": round(export_bytes / 1e6, 1), "unit": "MB", "target": None},
        {
            "name": "export_web_rss_growth_mb",
            "value": round((exporter.rss_peak - exporter.rss_before) / 1e6, 1),
            "unit": "MB",
            "target": None,
        },
    ]


if __name__ == "__main__":
    for figure in run():
        print(json.dumps(figure))
