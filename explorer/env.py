"""Strict readers for configuration from the environment.

Every reader takes the variable name and a default, and raises ImproperlyConfigured naming
the variable and the bad value; nothing falls back silently. `NAME_FILE` (a path) is accepted
in place of `NAME` for every reader, so secrets can come from Docker/Kubernetes secret files;
setting both is an error. The full list of variables lives in docs/configuration.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
T = TypeVar("T")


def env_raw(name: str, environ: dict[str, str] | None = None) -> str | None:
    """The raw value of `name` or of the file named by `name_FILE`; None when neither is set.

    Raises ImproperlyConfigured when both are set or when the file cannot be read.
    """
    env = os.environ if environ is None else environ
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value is not None and file_name is not None:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if file_name is not None:
        try:
            # Secret files usually end in a newline that is not part of the secret.
            return Path(file_name).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return value


def env_str(
    name: str, default: str | None = None, *, environ: dict[str, str] | None = None
) -> str | None:
    """A string; an empty value counts as unset (returns the default)."""
    value = env_raw(name, environ)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool, *, environ: dict[str, str] | None = None) -> bool:
    """true/false, 1/0, yes/no, on/off (any case). Anything else raises ImproperlyConfigured."""
    value = env_str(name, None, environ=environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off."
    )


def _env_parsed(
    name: str, parse: Callable[[str], T], what: str, environ: dict[str, str] | None
) -> tuple[str, T] | None:
    """The value of `name` and `parse(value)`; None when unset. Raises ImproperlyConfigured,
    saying the value is not `what`, when `parse` raises ValueError."""
    value = env_str(name, None, environ=environ)
    if value is None:
        return None
    try:
        return value, parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {what}.") from None


def env_int(
    name: str, default: int, *, minimum: int | None = None, environ: dict[str, str] | None = None
) -> int:
    """A base-10 integer, optionally at least `minimum`."""
    parsed = _env_parsed(name, int, "an integer", environ)
    if parsed is None:
        return default
    _, number = parsed
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: dict[str, str] | None = None,
) -> float:
    """A decimal number, optionally at least `minimum`."""
    parsed = _env_parsed(name, float, "a number", environ)
    if parsed is None:
        return default
    value, number = parsed
    if math.isnan(number) or (minimum is not None and number < minimum):  # NaN or too small
        raise ImproperlyConfigured(f"{name}={value!r} must be a number of at least {minimum}.")
    return number


def env_list(
    name: str, default: list[str] | tuple[str, ...], *, environ: dict[str, str] | None = None
) -> list[str]:
    """Comma-separated items, whitespace trimmed. An empty item (`a,,b`) is an error."""
    value = env_str(name, None, environ=environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(
            f"{name}={value!r} has an empty item; separate items with one comma."
        )
    return items


def parse_database_url(url: str, *, name: str = "DATABASE_URL") -> dict:
    """Django DATABASES entry for a `postgres://user:password@host:port/dbname?opt=v` URL.

    The host may also be given as `?host=/path/to/socket-dir` (unix socket), which is what the
    embedded server uses. Other query options (sslmode, ...) go to psycopg unchanged.
    Raises ImproperlyConfigured for another scheme or a missing database name.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"{name} must start with postgresql:// (PostgreSQL with pgvector is required); "
            f"got scheme {parts.scheme!r}."
        )
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} has no database name (postgresql://.../<name>).")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port.") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": options,
    }


# Keys of a DATABASES entry's OPTIONS that Django's PostgreSQL backend reads itself.
_DJANGO_OPTIONS = frozenset(
    {"pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory"}
)


def database_url_from_settings(db: dict, *, database: str | None = None) -> str:
    """The inverse of parse_database_url: a URL for a DATABASES entry (e.g. for a subprocess)."""
    from urllib.parse import quote, urlencode

    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or ""
    # Django's own OPTIONS (its connection pool's settings, ...) mean nothing to libpq.
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k not in _DJANGO_OPTIONS}
    netloc_host = ""
    if host.startswith("/"):
        options["host"] = host
    else:
        netloc_host = host
        if db.get("PORT"):
            netloc_host += f":{db['PORT']}"
    query = f"?{urlencode(options)}" if options else ""
    name = quote(database or db["NAME"], safe="")
    return f"postgresql://{auth}@{netloc_host}/{name}{query}"
