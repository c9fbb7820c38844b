"""System checks explorer.W001-W005, each against a real server or real settings."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.db.utils import ConnectionHandler

from explorer.core import checks
from explorer.core.embedded import free_port
from explorer.env import parse_database_url
from tests.helpers import REPO

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"  # Debian's PostgreSQL 15, no pgvector


def _connection(url: str):
    return ConnectionHandler({"default": parse_database_url(url)})["default"]


def _system_pg_or_skip():
    connection = _connection(SYSTEM_PG)
    try:
        connection.ensure_connection()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the system PostgreSQL (no pgvector) is not running at {SYSTEM_PG}: {exc}")
    return connection


def test_w001_reports_an_unreachable_redis(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert [w.id for w in checks.check_redis()] == ["explorer.W001"]


def test_w001_is_quiet_when_redis_answers(settings, redis_url):
    settings.REDIS_URL = redis_url
    assert checks.check_redis() == []


def test_w002_reports_a_postgres_without_pgvector(django_db_blocker):
    with django_db_blocker.unblock():
        connection = _system_pg_or_skip()
        try:
            warnings = checks._check_database(connection)
        finally:
            connection.close()
    assert [w.id for w in warnings] == ["explorer.W002"]
    assert "vector" in warnings[0].msg


def test_w002_is_quiet_on_the_embedded_postgres(db):
    assert checks.check_postgres(databases=["default"]) == []


def test_w003_reports_an_unreachable_postgres(django_db_blocker):
    connection = _connection(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    )
    with django_db_blocker.unblock():
        warnings = checks._check_database(connection)
    assert [w.id for w in warnings] == ["explorer.W003"]


def test_database_checks_run_only_when_a_database_is_named():
    assert checks.check_postgres(databases=None) == []


def test_w004_warns_in_deploy_checks_when_the_secret_key_comes_from_var(settings):
    settings.SECRET_KEY_FROM_VAR = True
    assert [w.id for w in checks.check_secret_key_source()] == ["explorer.W004"]
    settings.SECRET_KEY_FROM_VAR = False
    assert checks.check_secret_key_source() == []


def test_w005_warns_when_no_live_model_queue_is_configured(settings):
    settings.EXPLORER_LIVE_MODELS = []
    assert [w.id for w in checks.check_live_models()] == ["explorer.W005"]


def test_migrate_explains_a_missing_pgvector_without_a_traceback(django_db_blocker):
    """Against the system PostgreSQL 15 (pg_trgm but no pgvector), in a throwaway database."""
    with django_db_blocker.unblock():
        admin = _system_pg_or_skip()
        name = f"sfe_no_pgvector_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
        env.update(
            DATABASE_URL=SYSTEM_PG.rsplit("/", 1)[0] + f"/{name}",
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # unreachable: only a warning
            SECRET_KEY="x" * 40,
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            check=False,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with django_db_blocker.unblock():
            probe = _connection(env["DATABASE_URL"])
            with probe.cursor() as cursor:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                tables = [row[0] for row in cursor.fetchall()]
            probe.close()
    finally:
        with django_db_blocker.unblock(), admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    assert result.returncode != 0
    assert (
        "lacks the extension(s) vector: this project requires pgvector and pg_trgm" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "explorer.W002" in result.stderr + result.stdout
    assert tables == ["django_migrations"]  # refused before any app table was created


def test_w006_warns_when_the_frontend_is_not_built(settings, tmp_path):
    settings.FRONTEND_DIST = tmp_path
    assert [w.id for w in checks.check_frontend_build()] == ["explorer.W006"]


def test_w006_is_quiet_with_a_build(settings, tmp_path):
    (tmp_path / ".vite").mkdir()
    (tmp_path / ".vite" / "manifest.json").write_text("{}")
    settings.FRONTEND_DIST = tmp_path
    assert checks.check_frontend_build() == []
