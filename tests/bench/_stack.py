"""The embedded stack the whole-command benches start: an environment for a temporary var
dir (its own PostgreSQL and Redis, one torch thread per process), `manage.py` commands,
background processes in their own session, and waiting for the web server."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bench_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without service URLs, pointed at `var_dir`'s own embedded
    PostgreSQL and Redis (started here), one thread per process, plus `extra`. The follow-ups
    an index run queues after itself (the SAE's quality evaluation, steering showcases) are
    off: they would hold the index workers during the next timed run."""
    from explorer.core import embedded

    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(
        EXPLORER_VAR_DIR=str(var_dir),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        SAE_EVAL_AFTER_INDEX_TOKENS="0",
        SHOWCASE_CANDIDATES="0",
        **extra,
    )
    os.environ["EXPLORER_VAR_DIR"] = str(var_dir)
    env.update(embedded.ensure_services(dict(env)))
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run `manage.py args` and return its stdout; RuntimeError with its output on failure."""
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `argv` in its own session (stop() kills its whole group), output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(30)


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until 127.0.0.1:`port` answers `path`; RuntimeError if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"web server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"web server did not answer {path} in {timeout:.0f} s")
