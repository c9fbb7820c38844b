"""The tree passes `ruff check` and `ruff format --check` (pyproject.toml [tool.ruff]; the
engine's nested workers/engine/ruff.toml extends it), with the virtualenv's own ruff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

RUFF = Path(sys.executable).parent / "ruff"
PATHS = ["explorer", "workers", "tests"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), *args, *PATHS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ruff_check_finds_nothing():
    result = _ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_would_change_nothing():
    result = _ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
