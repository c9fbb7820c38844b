"""The explainer's settings: read strictly, the key also from a *_FILE secret."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import run_python

PRINT = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.EXPLAINER_BASE_URL, s.EXPLAINER_MODEL, s.EXPLAINER_API_KEY, s.EXPLAINER_MAX_RETRIES)"
)


def _run(**env: str) -> subprocess.CompletedProcess:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EXPLAINER_")}
    return run_python(PRINT, env={**unset, **env})


def test_no_endpoint_by_default():
    assert _run().stdout.split() == ["None", "gpt-4o-mini", "None", "4"]


def test_the_key_may_come_from_a_secret_file(tmp_path):
    key = tmp_path / "key"
    key.write_text("sk-from-file\n")
    result = _run(EXPLAINER_BASE_URL="http://127.0.0.1:8080/v1", EXPLAINER_API_KEY_FILE=str(key))
    assert result.stdout.split()[:3] == ["http://127.0.0.1:8080/v1", "gpt-4o-mini", "sk-from-file"]


def test_a_base_url_without_a_scheme_is_refused():
    result = _run(EXPLAINER_BASE_URL="localhost:8080/v1")
    assert (
        "EXPLAINER_BASE_URL='localhost:8080/v1' must start with http:// or https://"
        in result.stderr
    )


def test_negative_retries_are_refused():
    assert "EXPLAINER_MAX_RETRIES=-1 must be at least 0" in _run(EXPLAINER_MAX_RETRIES="-1").stderr
