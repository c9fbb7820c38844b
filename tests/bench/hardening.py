"""Hardening under a hostile or failing world, through the real stack.

- steer_fair_ttft_ratio (``_hardening_fair``): a well-behaved client's median time to first
  token while another client keeps 200 requests in flight ÷ its median on a quiet server.
- export_page_slowdown (``_hardening_export``): feature-page p50 while an export streams ÷
  quiet p50.
- redis_recovery_s (``_hardening_redis``): seconds from Redis coming back to ``/healthz`` 200
  and a steering round trip working.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

PARTS = ("_hardening_fair", "_hardening_export", "_hardening_redis")


def run() -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    for part in PARTS:
        figures.extend(import_module(f"tests.bench.{part}").run())
    return figures
