"""`manage.py demo`: starts every child, stops them all on Ctrl-C, and explains bad set-ups."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from explorer.core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.helpers import REPO, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def var_dir():
    # Outside pytest's 0700 basetemp: as root, Postgres runs as `pgserver` (see
    # tests/fixtures/services.py).
    path = Path(tempfile.mkdtemp(prefix="sfe-test-demo-"))
    yield path
    for server in (EmbeddedPostgres(path), EmbeddedRedis(path)):
        server.stop()  # only if a failed test left them running
    shutil.rmtree(path, ignore_errors=True)


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_URL") and k not in {"DEBUG", "SECRET_KEY"}
    }
    return {
        **env,
        "EXPLORER_VAR_DIR": str(var_dir),
        "STATIC_ROOT": str(var_dir / "static"),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _start_demo(env: dict[str, str], port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--port",
            str(port),
            "--allow-missing-frontend",
            *args,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_line(process: subprocess.Popen, marker: str, timeout: float = 180.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    process.kill()
    raise AssertionError(f"demo did not print {marker!r}:\n{''.join(lines)}")


def _wait_healthy(url: str, timeout: float = 60.0) -> int:
    """The status of the first successful answer from `url`."""
    status = 0

    def healthy() -> int:
        nonlocal status
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            pass
        return 0

    return wait_until(
        healthy,
        timeout=timeout,
        interval=0.5,
        message=lambda: f"{url} never answered 2xx (last status: {status})",
    )


def _all_pids(demo: subprocess.Popen, var_dir: Path) -> set[int]:
    children = {p.pid for p in psutil.Process(demo.pid).children(recursive=True)}
    servers = {EmbeddedPostgres(var_dir).pid(), EmbeddedRedis(var_dir).pid()}
    return children | {pid for pid in servers if pid}


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _run_and_stop(var_dir: Path) -> tuple[float, set[int], str]:
    port = free_port()
    started = time.monotonic()
    demo = _start_demo(_env(var_dir), port)
    lines = _wait_for_line(demo, "Press Ctrl-C to stop.")
    assert _wait_healthy(f"http://127.0.0.1:{port}/healthz") == 200
    ready_s = time.monotonic() - started
    pids = _all_pids(demo, var_dir)
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, "".join(lines) + out
    return ready_s, pids, "".join(lines) + out


def test_demo_starts_every_child_and_ctrl_c_leaves_no_process_behind(var_dir):
    _, pids, output = _run_and_stop(var_dir)

    assert "running at http://127.0.0.1:" in output
    # postgres, redis, the worker (+ its pool child) and uvicorn at least
    assert len(pids) >= 5, pids
    wait_until(
        lambda: all(_dead(pid) for pid in pids),
        timeout=10,
        interval=0.2,
        message=lambda: f"still alive: {[pid for pid in pids if not _dead(pid)]}",
    )
    assert "Stopped." in output


def test_a_second_start_reuses_var_and_keeps_the_data(var_dir):
    pg_version = var_dir / "pg" / "PG_VERSION"
    assert pg_version.exists(), "runs after the first start"
    before = pg_version.stat().st_mtime_ns
    secret = (var_dir / "secret_key").read_text()

    ready_s, _, _ = _run_and_stop(var_dir)

    assert pg_version.stat().st_mtime_ns == before  # no new initdb
    assert (var_dir / "secret_key").read_text() == secret
    assert ready_s < 60


def test_a_stale_var_dir_gets_a_clear_message(tmp_path):
    (tmp_path / "VERSION.json").write_text(json.dumps({"format": 0, "postgres_major": "16"}))
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--port", str(free_port())],
        check=False,
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "was created by another version" in result.stderr
    assert "Traceback" not in result.stderr


def _demo_with_services(
    embedded_services, tmp_path, *args: str, **env: str
) -> subprocess.CompletedProcess:
    environment = _env(
        tmp_path, DATABASE_URL=embedded_services.database_url, REDIS_URL=embedded_services.redis_url
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "demo", *args],
        check=False,
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_gets_a_clear_message(embedded_services, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _demo_with_services(
            embedded_services, tmp_path, "--port", str(port), "--allow-missing-frontend"
        )
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_url_gets_a_clear_message(embedded_services, tmp_path):
    bad = f"postgresql://postgres@127.0.0.1:{free_port()}/explorer"
    result = _demo_with_services(
        embedded_services, tmp_path, "--port", str(free_port()), DATABASE_URL=bad
    )
    assert result.returncode != 0
    assert "Cannot reach the database 'explorer' (DATABASE_URL)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_frontend_build_gets_a_clear_message(embedded_services, tmp_path):
    result = _demo_with_services(
        embedded_services,
        tmp_path,
        "--port",
        str(free_port()),
        FRONTEND_DIST=str(tmp_path / "dist"),
    )
    assert result.returncode != 0
    assert "The frontend is not built" in result.stderr
    assert "make install" in result.stderr


def test_missing_npm_and_node_get_a_clear_message(embedded_services, tmp_path):
    result = _demo_with_services(
        embedded_services,
        tmp_path,
        "--port",
        str(free_port()),
        FRONTEND_DIST=str(tmp_path / "dist"),
        PATH=str(tmp_path / "empty-bin"),
    )
    assert result.returncode != 0
    assert "npm/node are missing: install Node.js 20+" in result.stderr


def test_children_stop_even_when_the_supervisor_is_killed(var_dir):
    port = free_port()
    demo = _start_demo(_env(var_dir), port, "--no-worker")
    _wait_for_line(demo, "Press Ctrl-C to stop.")
    children = {p.pid for p in psutil.Process(demo.pid).children(recursive=True)}
    assert children

    demo.kill()
    demo.wait(10)

    wait_until(
        lambda: all(_dead(pid) for pid in children),
        timeout=15,
        interval=0.2,
        message=lambda: f"still alive: {[pid for pid in children if not _dead(pid)]}",
    )


def test_a_killed_live_worker_is_restarted_and_the_app_stays_up(var_dir):
    port = free_port()
    # Health read afresh at each request, so a 200 after the kill comes from the new worker.
    demo = _start_demo(_env(var_dir, HEALTHZ_CACHE_SECONDS="0"), port)
    lines = _wait_for_line(demo, "Press Ctrl-C to stop.")
    pids_line = next(line for line in lines if line.startswith("pids:"))
    pids = dict(item.split("=") for item in pids_line.split()[1:])
    worker = psutil.Process(int(pids["worker"]))
    pool = worker.children(recursive=True)
    healthz = f"http://127.0.0.1:{port}/healthz"
    assert _wait_healthy(healthz, timeout=120) == 200

    worker.kill()  # the live worker's main process, as an out-of-memory kill would

    lines += _wait_for_line(demo, "worker restarted (pid ")
    output = "".join(lines)
    assert f"worker (pid {worker.pid}) was killed by SIGKILL; restarting in 1s." in output
    assert demo.poll() is None, output
    assert all(_dead(child.pid) for child in pool), "its pool process went with it"
    assert _wait_healthy(healthz, timeout=120) == 200
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output + out
    assert "Stopped." in out
