"""Strict environment readers: bad values raise ImproperlyConfigured naming the variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from explorer.env import (
    database_url_from_settings,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)]
)
def test_env_bool_reads_the_usual_spellings(raw, expected):
    assert env_bool("DEBUG", not expected, environ={"DEBUG": raw}) is expected


def test_env_bool_rejects_anything_else():
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})


def test_unset_and_empty_values_give_the_default():
    assert env_bool("DEBUG", True, environ={}) is True
    assert env_str("SECRET_KEY", "d", environ={"SECRET_KEY": "  "}) == "d"


def test_env_int_rejects_non_integers_and_values_below_the_minimum():
    with pytest.raises(ImproperlyConfigured, match="is not an integer"):
        env_int("SECURE_HSTS_SECONDS", 0, environ={"SECURE_HSTS_SECONDS": "1y"})
    with pytest.raises(ImproperlyConfigured, match="must be at least 0"):
        env_int("SECURE_HSTS_SECONDS", 0, minimum=0, environ={"SECURE_HSTS_SECONDS": "-1"})


def test_env_float_rejects_nan_and_words():
    with pytest.raises(ImproperlyConfigured):
        env_float(
            "HEALTHZ_INSPECT_TIMEOUT", 1.0, minimum=0.05, environ={"HEALTHZ_INSPECT_TIMEOUT": "nan"}
        )
    with pytest.raises(ImproperlyConfigured, match="is not a number"):
        env_float("HEALTHZ_INSPECT_TIMEOUT", 1.0, environ={"HEALTHZ_INSPECT_TIMEOUT": "soon"})


def test_env_list_splits_on_commas_and_trims():
    assert env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "a.org, b.org"}) == [
        "a.org",
        "b.org",
    ]


def test_env_list_rejects_an_empty_item():
    with pytest.raises(ImproperlyConfigured, match="empty item"):
        env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "a.org,,b.org"})


def test_a_file_secret_is_read_without_its_trailing_newline(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    assert env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(secret)}) == "s3cret"


def test_setting_a_value_and_its_file_is_an_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_str("SECRET_KEY", environ={"SECRET_KEY": "a", "SECRET_KEY_FILE": str(tmp_path / "k")})


def test_an_unreadable_secret_file_is_an_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_database_url_with_host_port_and_options():
    db = parse_database_url("postgresql://u:p%40ss@db.internal:6432/explorer?sslmode=require")
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "db.internal",
        "6432",
        "explorer",
        "u",
        "p@ss",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_database_url_with_a_unix_socket_directory():
    db = parse_database_url("postgresql://postgres@/explorer?host=/srv/var/pg")
    assert db["HOST"] == "/srv/var/pg"
    assert db["OPTIONS"] == {}


def test_database_url_must_be_postgres():
    with pytest.raises(ImproperlyConfigured, match="must start with postgresql://"):
        parse_database_url("sqlite:///db.sqlite3")


def test_database_url_needs_a_database_name():
    with pytest.raises(ImproperlyConfigured, match="no database name"):
        parse_database_url("postgresql://u@host:5432/")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40ss@db:6432/x?sslmode=require",
        "postgresql://postgres@/explorer?host=%2Fsrv%2Fpg",
    ],
)
def test_database_url_round_trips(url):
    db = parse_database_url(url)
    assert parse_database_url(database_url_from_settings(db)) == db


def test_a_database_url_for_libpq_leaves_out_djangos_own_options():
    db = parse_database_url("postgresql://u@db:5432/x?sslmode=require")
    pooled = {**db, "OPTIONS": {**db["OPTIONS"], "pool": {"min_size": 1}}}
    assert database_url_from_settings(pooled) == "postgresql://u@db:5432/x?sslmode=require"
