from __future__ import annotations

import pytest

from tests.explorer.explanations.llm_server import FakeLLM


@pytest.fixture
def fake_llm():
    """A local OpenAI-compatible server on loopback (real HTTP, canned answers)."""
    with FakeLLM() as server:
        yield server
