"""explorer/saes is imported by the web process, which never imports torch (DESIGN.md §2); the
add_sae command loads the engine only when it runs (listing commands imports its module)."""

from __future__ import annotations

from tests.helpers import run_python

SCRIPT = """
import sys
import django
django.setup()
import explorer.saes.models, explorer.saes.admin, explorer.saes.selectors, explorer.saes.services
import explorer.saes.indexing, explorer.saes.consumers
import workers.management.commands.add_sae, workers.management.commands.embed_explanations
heavy = sorted(m for m in ("torch", "transformers", "sae_lens", "transformer_lens")
               if m in sys.modules)
print("heavy:", heavy)
"""


def test_importing_the_saes_app_imports_no_torch():
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
