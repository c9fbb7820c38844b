"""Child processes for `manage.py demo`: each in its own process group, stopped as a group.

Each child starts in a new session, so the terminal's Ctrl-C reaches only the supervisor, which
then stops the children in order: SIGTERM to the whole group, SIGKILL after a timeout. Killing
the group (not just the pid) also takes grandchildren, e.g. Celery's prefork pool processes.
If the supervisor itself is killed (SIGKILL), the kernel sends each child SIGTERM (Linux
PR_SET_PDEATHSIG); the embedded PostgreSQL/Redis daemons then stay up and the next start
reuses them.

A child started with a `RestartPolicy` (the workers and the web server) is started again when
it exits, after a back-off that doubles while it keeps dying young, so one killed process (an
out-of-memory kill of the live worker, say) does not take the app down. One that cannot stay
up (it dies young `give_up` times in a row) stops everything, as a child without a policy does
at its first exit: a configuration error must not turn into a silent restart loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class RestartPolicy:
    """When to start an exited child again: after `first` seconds, doubled after each exit
    within `stable` seconds of its start, at most `most`; a child that ran `stable` seconds
    or more starts again after `first`. `give_up` young exits in a row stop the supervisor."""

    first: float = 1.0
    most: float = 30.0
    stable: float = 60.0
    give_up: int = 5

    def delay(self, young_exits: int) -> float:
        """Seconds to wait before the restart that follows `young_exits` (>= 0) young exits."""
        return min(self.first * 2 ** max(young_exits - 1, 0), self.most)


class ChildFailed(Exception):
    """A child exited and will not be started again (no policy, or it kept dying young)."""

    def __init__(self, child: Child, code: int, why: str) -> None:
        super().__init__(f"{child.name} {describe_exit(code)}{why}")
        self.child = child
        self.code = code


def describe_exit(code: int) -> str:
    """`exited with code 3` or `was killed by SIGKILL` (Popen's negative return codes)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    restart: RestartPolicy | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    log: object = field(default=None, repr=False)  # a binary file, or None for our stdout
    started_at: float = field(default=0.0, repr=False)  # the supervisor's clock
    young_exits: int = field(default=0, repr=False)  # exits in a row within policy.stable
    restart_at: float | None = field(default=None, repr=False)  # monotonic; None: not waiting

    def start(self, *, log=None) -> None:
        if log is not None:
            self.log = log
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor runs no threads
        )
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """The exit code if the child has exited, else None (also while it waits to restart)."""
        if self.restart_at is not None:
            return None
        return self.process.poll() if self.process else 0

    def reap_group(self) -> None:
        """SIGKILL what is left of an exited child's group (e.g. the pool process of a Celery
        worker whose main process was killed, which would hold its model's memory)."""
        if self.process is None:
            return
        pgid = self.process.pid
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL the group. Idempotent."""
        self.restart_at = None
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
    """Starts children in order; stops them in reverse order (web first, so no new work);
    `tend` restarts the ones with a restart policy when they exit."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.children: list[Child] = []
        self.clock = clock

    def start(self, child: Child, *, log=None) -> Child:
        child.start(log=log)
        child.started_at = self.clock()
        self.children.append(child)
        return child

    def tend(self, say: Callable[[str], None]) -> None:
        """One round of supervision, called every fraction of a second: schedule the restart
        of each child that exited, start those whose back-off is over, and `say` so.

        Raises ChildFailed for a child that exited without a restart policy, or that died
        young `give_up` times in a row.
        """
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    child.started_at = now
                    say(f"{child.name} restarted (pid {child.pid}).")
                continue
            code = child.exited()
            if code is None:
                continue
            child.reap_group()
            policy = child.restart
            if policy is None:
                raise ChildFailed(child, code, "; stopping everything.")
            young = now - child.started_at < policy.stable
            child.young_exits = child.young_exits + 1 if young else 0
            if child.young_exits >= policy.give_up:
                raise ChildFailed(
                    child,
                    code,
                    f" within {policy.stable:.0f}s of its start {child.young_exits} times in "
                    "a row; stopping everything.",
                )
            delay = policy.delay(child.young_exits)
            child.restart_at = now + delay
            say(f"{child.name} (pid {child.pid}) {describe_exit(code)}; restarting in {delay:g}s.")

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            child.stop(timeout)
        self.children.clear()
