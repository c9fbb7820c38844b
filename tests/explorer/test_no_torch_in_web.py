"""The web process never imports torch (DESIGN.md §2), nor workers/ beyond the shared contract
(tests/explorer/test_dependencies.py): checked in a fresh interpreter."""

from __future__ import annotations

import json

from tests.explorer.test_dependencies import ALLOWED_WORKER_MODULES
from tests.helpers import run_python

SCRIPT = """
import json, sys
import django
django.setup()
import explorer.asgi, explorer.urls
from django.test import Client
response = Client(HTTP_HOST="localhost").get("/accounts/login/", secure=True)
assert response.status_code == 200, response.status_code
response = Client(HTTP_HOST="localhost").get("/api/v1/openapi.json", secure=True)
assert response.status_code == 200, response.status_code
heavy = sorted(m for m in ("torch", "transformers", "sae_lens", "transformer_lens")
               if m in sys.modules)
print("heavy:", heavy)
# The workers app (its management commands) is installed: Django loads its AppConfig only.
print("workers:", json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "workers")))
"""


def test_serving_requests_imports_no_torch(collected_static):
    result = run_python(SCRIPT, env={"STATIC_ROOT": str(collected_static)})
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("workers: "))
    loaded = set(json.loads(line.removeprefix("workers: ")))
    assert loaded <= {"workers", "workers.apps", "workers.engine", *ALLOWED_WORKER_MODULES}
