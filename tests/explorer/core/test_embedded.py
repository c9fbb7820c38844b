"""Embedded servers are shared between processes: the last holder stops them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from explorer.core import embedded
from tests.helpers import REPO

pytestmark = pytest.mark.integration


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="sfe-test-embedded-"))
    yield path
    embedded.EmbeddedRedis(path).stop()
    embedded.EmbeddedPostgres(path).stop()
    shutil.rmtree(path, ignore_errors=True)


def test_a_server_outlives_a_holder_while_another_holds_it(root):
    redis = embedded.EmbeddedRedis(root)
    other = subprocess.Popen(["sleep", "60"])
    try:
        url = embedded.acquire(redis)
        embedded.acquire(redis, pid=other.pid)
        assert url.startswith("redis://127.0.0.1:")

        assert embedded.release(redis) is False
        assert redis.is_running()

        other.kill()
        other.wait()
        assert embedded.release(redis, pid=other.pid) is True
        assert not redis.is_running()
    finally:
        other.kill()


def test_a_dead_holder_is_pruned_so_the_last_live_one_stops_the_server(root):
    redis = embedded.EmbeddedRedis(root)
    ghost = subprocess.Popen(["true"])
    ghost.wait()
    embedded.acquire(redis, pid=ghost.pid)  # a holder that died without releasing
    embedded.acquire(redis)
    assert embedded.release(redis) is True


def test_a_second_acquire_reuses_the_running_server_and_its_port(root):
    redis = embedded.EmbeddedRedis(root)
    first = embedded.acquire(redis)
    pid = redis.pid()
    try:
        assert embedded.acquire(embedded.EmbeddedRedis(root)) == first
        assert embedded.EmbeddedRedis(root).pid() == pid
    finally:
        embedded.release(redis)


def test_a_fresh_var_dir_gets_a_version_stamp(root):
    embedded.check_version_stamp(root)
    stamp = json.loads((root / "VERSION.json").read_text())
    assert stamp["format"] == embedded.LAYOUT_FORMAT
    embedded.check_version_stamp(root)  # and accepts it next time


def test_a_var_dir_from_another_version_is_refused(root):
    (root / "VERSION.json").write_text(json.dumps({"format": 0, "postgres_major": "16"}))
    with pytest.raises(embedded.EmbeddedError, match="created by another version"):
        embedded.check_version_stamp(root)


def test_pgdata_without_a_stamp_is_refused(root):
    (root / "pg").mkdir()
    (root / "pg" / "PG_VERSION").write_text("16\n")
    with pytest.raises(embedded.EmbeddedError, match="Move it away"):
        embedded.check_version_stamp(root)


@pytest.mark.slow
def test_a_standalone_command_starts_the_servers_and_stops_them_at_exit(root):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(EXPLORER_VAR_DIR=str(root), STATIC_ROOT=str(root / "static"))
    code = "from django.db import connection; connection.ensure_connection(); print('connected')"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "connected" in result.stdout
    assert (root / "pg" / "PG_VERSION").exists()
    assert not embedded.EmbeddedPostgres(root).is_running()
    assert not embedded.EmbeddedRedis(root).is_running()
