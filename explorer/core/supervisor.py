"""Child processes for `manage.py demo`: each in its own process group, stopped as a group.

Each child starts in a new session, so the terminal's Ctrl-C reaches only the supervisor, which
then stops the children in order: SIGTERM to the whole group, SIGKILL after a timeout. Killing
the group (not just the pid) also takes grandchildren, e.g. Celery's prefork pool processes.
If the supervisor itself is killed (SIGKILL), the kernel sends each child SIGTERM (Linux
PR_SET_PDEATHSIG); the embedded PostgreSQL/Redis daemons then stay up and the next start
reuses them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


def celery_worker_argv(*, queues: str, name: str, extra: Sequence[str] = ()) -> list[str]:
    """The command line of one worker of this project's Celery app: it consumes `queues`
    (comma-separated), one task at a time, under node name `name`; `extra` options follow."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        "1",
        "-n",
        name,
        *extra,
    ]


# The longest request head (request line + headers) uvicorn reads, in bytes. A shared link may
# carry a text to test in its URL (`?text=`), and the app, not the server, should say when it is
# too long: 1 MB of text, percent-encoded, fits. Uvicorn's h11 parser takes this limit;
# httptools (its default when installed) refuses any URL over 64 KiB with a bare "Invalid HTTP
# request received." (deploy/Dockerfile.web starts uvicorn the same way).
MAX_REQUEST_HEAD_BYTES = 4 << 20


def web_server_argv(*, host: str, port: int) -> list[str]:
    """The command line of this project's ASGI server (uvicorn: HTTP and websockets) on
    `host`:`port`, without lifespan events (Django has none) or access logs. uvicorn leaves
    the peer address alone (it would believe X-Forwarded-For from 127.0.0.1): the application
    resolves it through TRUSTED_PROXIES (explorer/core/clients.py)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "explorer.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--no-access-log",
        "--http",
        "h11",
        "--h11-max-incomplete-event-size",
        str(MAX_REQUEST_HEAD_BYTES),
        "--no-proxy-headers",
    ]


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, *, log=None) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor runs no threads
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """The exit code if the child has exited, else None."""
        return self.process.poll() if self.process else 0

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL the group. Idempotent."""
        if self.process is None:
            return
        pgid = self.process.pid  # leader of its own session/group
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.process.wait(5)
        # Stragglers in the group (a pool child that ignored SIGTERM) go too.
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies (even by SIGKILL), so a
    killed `demo` leaves no web server or worker behind. Linux only; a no-op elsewhere."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Supervisor:
    """Starts children in order; stops them in reverse order (web first, so no new work)."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, child: Child, *, log=None) -> Child:
        child.start(log=log)
        self.children.append(child)
        return child

    def first_exited(self) -> tuple[Child, int] | None:
        for child in self.children:
            code = child.exited()
            if code is not None:
                return child, code
        return None

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            child.stop(timeout)
        self.children.clear()
