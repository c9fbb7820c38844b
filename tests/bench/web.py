"""Web stack benchmarks: demo start-up times and home-page throughput.

demo_cold_start_s: `manage.py demo` in a fresh var dir (initdb, migrations) to /healthz 200.
demo_warm_start_s: the same var dir again (target <= 15 s).
page_rps: GET / against the demo's uvicorn, from 4 keep-alive loopback clients for 5 s.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(var_dir: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(EXPLORER_VAR_DIR=str(var_dir), STATIC_ROOT=str(var_dir / "static"))
    started = time.monotonic()
    demo = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--port",
            str(port),
            "--allow-missing-frontend",
            "--index-tokens",
            "0",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def healthy() -> bool:
        if demo.poll() is not None:
            raise RuntimeError(f"demo exited with {demo.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(healthy, timeout=300, interval=0.2, message="demo never became healthy")
    except AssertionError:
        demo.kill()
        raise
    return demo, time.monotonic() - started


def _stop(demo: subprocess.Popen) -> None:
    demo.send_signal(signal.SIGINT)
    demo.wait(60)


def _page_rps(port: int, seconds: float = 5.0, clients: int = 4) -> float:
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def run() -> list[dict]:
    var_dir = Path(tempfile.mkdtemp(prefix="sfe-bench-demo-"))
    try:
        demo, cold = _start(var_dir, _free_port())
        _stop(demo)
        port = _free_port()
        demo, warm = _start(var_dir, port)
        try:
            rps = _page_rps(port)
        finally:
            _stop(demo)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    return [
        {"name": "demo_cold_start_s", "value": round(cold, 2), "unit": "s", "target": None},
        {"name": "demo_warm_start_s", "value": round(warm, 2), "unit": "s", "target": "<= 15"},
        {"name": "page_rps", "value": round(rps, 1), "unit": "requests/s", "target": None},
    ]
