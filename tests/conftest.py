"""The test suite's root: fixture plugins shared by every directory.

Fixtures used across directories live in plugin modules under tests/fixtures/, registered
here once, so no test module or conftest imports another conftest. Plain helpers (builders,
wait_until) live in plain modules: tests/helpers.py, tests/builders.py.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.steering",
    "tests.fixtures.llm",
]
