"""`make bench [BENCH=<group>]`: run benchmark groups, one JSON line per figure.

Each module `tests/bench/<group>.py` exposes `run() -> list[dict]` with keys
name, value, unit, target (a string such as ">= 0.90", or None for figures we only report).
Ratios are measured within one run: this machine is shared and noisy.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import traceback
from pathlib import Path


def groups() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    wanted = argv or groups()
    unknown = [g for g in wanted if g not in groups()]
    if unknown:
        sys.stderr.write(
            f"unknown bench group(s): {', '.join(unknown)}; known: {', '.join(groups())}\n"
        )
        return 2
    failed = 0
    for group in wanted:
        try:
            figures = importlib.import_module(f"tests.bench.{group}").run()
        except Exception:  # noqa: BLE001 — one broken group must not hide the others' figures
            failed += 1
            sys.stderr.write(f"bench group {group} failed:\n{traceback.format_exc()}")
            continue
        for figure in figures:
            sys.stdout.write(json.dumps({"group": group, **figure}) + "\n")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
