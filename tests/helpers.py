"""Plain helpers for tests and benchmarks: the repository root, the test secret key, and
waiting for something to become true.

A plain module, not a conftest: test modules, fixture plugins (tests/fixtures/) and the
benchmarks (`python -m tests.bench`) all import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET_KEY = "test-" + "k" * 60  # stable: subprocesses must accept this process's sessions

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call `predicate` until it returns something truthy and return that value.

    It is called at least once, and the deadline is checked only after a call, so a slow
    predicate (a ping with its own timeout) still gets its last try. After `timeout` seconds
    this raises AssertionError with `message`; a callable message is called then, to describe
    the state at the time of failure.
    Exceptions from `predicate` propagate at once: a process that died need not be waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout}s)")
        time.sleep(interval)


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers with any HTTP status; fail early if `process` (the server) exits."""

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    wait_until(answers, timeout=timeout, interval=0.1, message=f"{url} did not answer")


def run_python(
    script: str, *args: str, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess:
    """Run `script` (with `args`) in a fresh interpreter at the repository root, with Django's
    settings module and a throwaway SECRET_KEY set, and return the finished process (output as
    text, never raising on a non-zero exit). `env` entries override; None removes one."""
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "SECRET_KEY": "x" * 40}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
