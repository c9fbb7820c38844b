"""Settings read the environment strictly; production passes `check --deploy` cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, TEST_SECRET_KEY


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_URL") and k not in {"DEBUG", "SECRET_KEY", "HTTPS"}
    }
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "explorer.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_boolean_stops_start_up_with_a_clear_message():
    result = _run(["-c", "import django; django.setup()"], DEBUG="sometimes")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG='sometimes' is not a boolean" in result.stderr


def test_a_short_secret_key_is_refused():
    result = _run(["-c", "import django; django.setup()"], SECRET_KEY="short")
    assert "SECRET_KEY must be at least 32 characters" in result.stderr


def test_a_non_postgres_database_url_is_refused():
    result = _run(["-c", "import django; django.setup()"], DATABASE_URL="mysql://db/x")
    assert "DATABASE_URL must start with postgresql://" in result.stderr


def test_csrf_trusted_origins_need_a_scheme():
    result = _run(
        ["-c", "import django; django.setup()"], CSRF_TRUSTED_ORIGINS="explorer.example.org"
    )
    assert "must start with http:// or https://" in result.stderr


@pytest.mark.integration
def test_production_settings_pass_check_deploy_without_warnings(embedded_services):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="false",
        SECRET_KEY=TEST_SECRET_KEY + "-production-only",
        ALLOWED_HOSTS="explorer.example.org",
        CSRF_TRUSTED_ORIGINS="https://explorer.example.org",
        DATABASE_URL=embedded_services.database_url,
        REDIS_URL=embedded_services.redis_url,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_https_false_turns_off_the_redirect_secure_cookies_and_hsts():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS)"
    )
    assert _run(["-c", code], HTTPS="false").stdout.split() == ["False", "False", "False", "0"]
    assert _run(["-c", code]).stdout.split() == ["True", "True", "True", "31536000"]


def test_database_pool_is_on_in_the_web_process_only_and_sized_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['OPTIONS'].get('pool'))"
    )
    assert _run(["-c", code]).stdout.strip() == "None"  # commands, Celery workers
    pooled = _run(["-c", code], DATABASE_POOL="true", DATABASE_POOL_MAX="7")
    assert pooled.stdout.strip() == "{'min_size': 1, 'max_size': 7, 'timeout': 5.0}", pooled.stderr
    # The web process: what uvicorn imports (explorer/core/supervisor.py web_server_argv).
    web = "import explorer.asgi; from django.conf import settings as s; " + code.split("; ", 2)[2]
    assert _run(["-c", web]).stdout.strip() == "{'min_size': 1, 'max_size': 20, 'timeout': 5.0}"
    assert _run(["-c", web], DATABASE_POOL="false").stdout.strip() == "None"
    # Kept connections instead of a pool, as before pooling was the default: no pool, no error.
    kept = _run(["-c", web], DATABASE_CONN_MAX_AGE="60")
    assert kept.stdout.strip() == "None", kept.stderr


def test_database_pool_refuses_kept_connections():
    result = _run(
        ["-c", "import django; django.setup()"], DATABASE_POOL="true", DATABASE_CONN_MAX_AGE="60"
    )
    assert "DATABASE_POOL pools connections itself" in result.stderr


@pytest.mark.integration
def test_pooled_requests_share_connections(service_env):
    code = (
        "import django; django.setup()\n"
        "from django.db import connection, close_old_connections\n"
        "pids = set()\n"
        "for _ in range(5):\n"
        "    with connection.cursor() as cur:\n"
        "        cur.execute('SELECT pg_backend_pid()')\n"
        "        pids.add(cur.fetchone()[0])\n"
        "    connection.close()  # what the end of a request does: back to the pool\n"
        "print(len(pids), connection.pool.get_stats()['pool_max'])\n"
    )  # five requests, fewer server processes (the pool may open a second while warming)
    env = {k: v for k, v in service_env.items() if k.endswith("_URL")}
    result = _run(["-c", code], DATABASE_POOL="true", DATABASE_POOL_MAX="3", **env)
    backends, pool_max = map(int, result.stdout.split())
    assert backends <= 2 and pool_max == 3, result.stderr
