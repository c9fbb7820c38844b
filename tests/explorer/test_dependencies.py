"""Dependencies run one way (DESIGN.md §2): workers/ imports explorer/, and explorer/ starts
worker tasks by their registered names (explorer/core/tasks.py), never by importing workers/.

The one exception is the engine's shared contract: modules of plain data that both sides read
(the steering spec, corpus specs, the offline explainer's token quoting). They are listed here,
the one place, and each must import neither torch nor Django.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, run_python

ALLOWED_WORKER_MODULES = (
    "workers.engine.specs",  # SteerSpec and friends: the live protocol's wire format
    "workers.engine.corpus",  # corpus specs, checked by `index_sae` before anything is queued
    "workers.engine.explain",  # the offline explainer's token quoting, read by its scorer
)


def _allowed(name: str) -> bool:
    """Whether importing `name` (a module, or a name from one) stays inside the allowlist.
    The packages on the way to an allowed module (workers, workers.engine) are allowed too:
    their __init__ modules are empty."""
    if name != "workers" and not name.startswith("workers."):
        return True
    return any(
        name == a or name.startswith(a + ".") or a.startswith(name + ".")
        for a in ALLOWED_WORKER_MODULES
    )


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything a module imports, wherever the import statement is
    (function-local imports count), and of importlib.import_module("...") calls."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ast.unparse(node.func) in ("import_module", "importlib.import_module", "__import__")
        ):
            yield node.lineno, node.args[0].value


def _explorer_modules() -> list[Path]:
    return sorted((REPO / "explorer").rglob("*.py"))


def test_the_explorer_tree_is_found():
    assert len(_explorer_modules()) > 50


def test_no_module_under_explorer_imports_workers_beyond_the_shared_contract():
    offending = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in _explorer_modules()
        for line, name in _imported_names(ast.parse(path.read_text(), filename=str(path)))
        if not _allowed(name)
    ]
    assert not offending, "explorer/ imports workers/:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    "source",
    [
        "import workers.celery",
        "from workers import celery",
        "from workers.engine import loading",
        "from workers.engine.loading import load_model",
        "importlib.import_module('workers.index')",
    ],
)
def test_the_check_sees_each_way_of_importing_workers(source):
    assert [name for _, name in _imported_names(ast.parse(source)) if not _allowed(name)]


@pytest.mark.parametrize(
    "source",
    [
        "from workers.engine import specs",
        "from workers.engine.specs import SteerSpec",
        "import workers.engine.corpus",
        'INDEX_SHARD = "workers.index.index_shard"',  # a task name is a string, not an import
    ],
)
def test_the_check_lets_the_shared_contract_and_task_names_through(source):
    assert all(_allowed(name) for _, name in _imported_names(ast.parse(source)))


@pytest.mark.parametrize("module", ALLOWED_WORKER_MODULES)
def test_each_shared_module_imports_neither_torch_nor_django(module):
    script = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'django'}))\n"
    )
    result = run_python(script, env={"DJANGO_SETTINGS_MODULE": None})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_task_the_web_sends_is_registered_in_the_worker_app():
    from explorer.core.tasks import TASK_NAMES
    from workers.celery import app

    for module in app.conf.include:
        importlib.import_module(module)
    assert sorted(set(TASK_NAMES) - set(app.tasks)) == []
