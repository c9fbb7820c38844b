"""Live steering tests share the demo model and its rows (tests/fixtures/steering.py) and
drive /ws/steer/ through tests/explorer/steering/helpers.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_catalogue(_fresh_catalogue):
    """Every steering test starts with the consumer's catalogue cache empty (the plugin's
    fixture of this name, made autouse for this directory)."""
    yield
