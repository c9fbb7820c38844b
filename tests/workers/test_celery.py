"""The Celery app's documented tunables and queue layout."""

from __future__ import annotations

import pytest

from tests.helpers import run_python
from workers.celery import TIME_LIMITS, app, live_queue, time_limits


def test_tasks_are_acknowledged_late_and_prefetched_one_at_a_time():
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_batch_queues_are_declared_and_live_queues_are_per_model():
    assert {q.name for q in app.conf.task_queues} == {"index", "explain"}
    assert app.conf.task_create_missing_queues is True
    assert live_queue("gpt2") == "live.gpt2"


@pytest.mark.parametrize(
    ("queue", "kind"), [("live.gpt2", "live"), ("index", "index"), ("explain", "explain")]
)
def test_time_limits_come_from_one_table_per_queue(queue, kind):
    soft, hard = TIME_LIMITS[kind]
    assert time_limits(queue) == {"soft_time_limit": soft, "time_limit": hard}
    assert soft < hard


def test_an_unknown_queue_has_no_time_limits():
    with pytest.raises(KeyError):
        time_limits("nightly")


def test_messages_are_json_only():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"


def test_the_worker_parent_imports_no_torch():
    """Prefork children cannot use CUDA initialised in the parent: task modules (everything in
    `include`, which the parent imports at start) must import the engine inside task bodies."""
    script = (
        "import sys, importlib, django; django.setup()\n"
        "from workers.celery import app\n"
        "app.loader.import_default_modules()\n"
        "for name in app.conf.include: importlib.import_module(name)\n"
        "print('torch' in sys.modules)\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_django_fixup_sets_django_up_before_the_task_modules_import():
    """Task modules import explorer services and selectors at the top, so Django must be set
    up before a worker imports them: Celery's Django fix-up does it, as in `celery worker`."""
    script = (
        "from workers.celery import app\n"
        "modules = app.loader.import_default_modules()\n"
        "print(sorted(m.__name__ for m in modules))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert "workers.index" in result.stdout
