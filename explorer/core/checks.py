"""System checks with ids (run by `manage.py check`, `migrate`, `demo`; each is tested).

explorer.W001  Redis unreachable (broker, channel layer and cache all live there).
explorer.W002  PostgreSQL lacks pgvector or pg_trgm (migrations will refuse to run).
explorer.W003  PostgreSQL unreachable.
explorer.W004  deploy: SECRET_KEY comes from var/secret_key instead of the environment.
explorer.W005  no live model queue configured (EXPLORER_LIVE_MODELS is empty).
explorer.W006  the frontend is not built (every page links it through {% vite_asset %}).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register

REQUIRED_EXTENSIONS = ("vector", "pg_trgm")


@register(Tags.caches)
def check_redis(app_configs=None, **kwargs) -> list[Warning]:
    from explorer.core.health import redis_status

    return _warning_unless(
        redis_status() == "ok",
        f"Redis at {_redact(settings.REDIS_URL)} is unreachable.",
        hint="Start Redis or set REDIS_URL; Celery, websockets and the cache need it.",
        id="explorer.W001",
    )


def missing_extensions(connection) -> list[str]:
    """The REQUIRED_EXTENSIONS the server cannot install (not in pg_available_extensions)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM pg_available_extensions WHERE name = ANY(%s)",
            [list(REQUIRED_EXTENSIONS)],
        )
        available = {row[0] for row in cursor.fetchall()}
    return [name for name in REQUIRED_EXTENSIONS if name not in available]


@register(Tags.database)
def check_postgres(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    # Django convention: database checks run only when asked (`check --database default`,
    # and migrate, which passes the database it migrates).
    from django.db import connections

    if not databases:
        return []
    return [warning for alias in databases for warning in _check_database(connections[alias])]


def _check_database(connection) -> list[Warning]:
    try:
        missing = missing_extensions(connection)
    except Exception as exc:  # noqa: BLE001
        return [
            Warning(
                f"PostgreSQL is unreachable: {first_line(exc)}",
                hint="Start PostgreSQL or fix DATABASE_URL.",
                id="explorer.W003",
            )
        ]
    return _warning_unless(
        not missing,
        f"PostgreSQL lacks the extension(s) {', '.join(missing)}.",
        hint="Use PostgreSQL with pgvector and pg_trgm (e.g. the pgvector/pgvector image), "
        "or unset DATABASE_URL to use the embedded server.",
        id="explorer.W002",
    )


@register(Tags.security, deploy=True)
def check_secret_key_source(app_configs=None, **kwargs) -> list[Warning]:
    return _warning_unless(
        not getattr(settings, "SECRET_KEY_FROM_VAR", False),
        "SECRET_KEY is read from var/secret_key (the quickstart default).",
        hint="Set SECRET_KEY or SECRET_KEY_FILE in production so every replica shares it.",
        id="explorer.W004",
    )


@register()
def check_live_models(app_configs=None, **kwargs) -> list[Warning]:
    return _warning_unless(
        bool(settings.EXPLORER_LIVE_MODELS),
        "No live model queue is configured (EXPLORER_LIVE_MODELS is empty).",
        hint="List the models whose live.<model> queues workers serve, "
        "e.g. EXPLORER_LIVE_MODELS=demo.",
        id="explorer.W005",
    )


@register()
def check_frontend_build(app_configs=None, **kwargs) -> list[Warning]:
    from pathlib import Path

    manifest = Path(settings.FRONTEND_DIST) / ".vite" / "manifest.json"
    return _warning_unless(
        manifest.exists(),
        f"The frontend is not built: {manifest} is missing, so pages cannot render.",
        hint="Run `make install` (or `cd frontend && npm ci && npm run build`).",
        id="explorer.W006",
    )


def _warning_unless(ok: bool, message: str, *, hint: str, id: str) -> list[Warning]:
    """No warning when `ok`, else the one warning of a check."""
    return [] if ok else [Warning(message, hint=hint, id=id)]


def first_line(exc: BaseException) -> str:
    """The first line of the error's message (drivers add detail lines), else its repr."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
