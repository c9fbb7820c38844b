"""An indexed synthetic SAE (tests/builders.py) for the browser's pages."""

from __future__ import annotations

import pytest

from tests.builders import build_indexed_sae


@pytest.fixture
def indexed(db):
    """tiny/res-1: 32 features, every 10th dead (0, 10, 20, 30), 3 top examples + 1 quantile
    each."""
    return build_indexed_sae()
