"""Part of the hardening bench group (see ``hardening.py``); not yet measured."""

from __future__ import annotations

from typing import Any


def run() -> list[dict[str, Any]]:
    return []
