"""The Celery app: broker from Django settings (read lazily), queues and tunables in one place.

Start a worker with `celery -A workers.celery worker -Q index,explain,live.demo`.

Queues (DESIGN.md §2) are named in explorer/core/tasks.py, which the web sends tasks through:
`live.<model>` per model for interactive work (steering, testing text), `index` and `explain`
for batch work, so an hour-long indexing job never sits in front of a slider move. A live
worker serves one model on one GPU.

CUDA and the parent process: a prefork worker's parent forks its children; CUDA cannot be
used across fork, so the parent must never initialise it. Nothing at import time here (nor in
workers/*.py modules) imports torch; tasks import the engine's torch modules inside the task
body, in the child. Django is set up by the parent: Celery's Django fix-up calls django.setup()
before it imports the task modules in `include`, so they import explorer services and
selectors at the top; that does not touch CUDA.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from explorer.core.tasks import BATCH_QUEUES, INDEX_QUEUE, live_queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")

__all__ = ["BATCH_QUEUES", "TIME_LIMITS", "app", "live_queue", "time_limits"]

app = Celery("explorer")
# Lazy: settings are read at first use, so importing this module configures nothing yet.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Soft limit raises SoftTimeLimitExceeded inside the task (it can record the failure); the hard
# limit kills the child. Seconds, per queue, the one place they are set.
TIME_LIMITS: dict[str, tuple[int, int]] = {
    "live": (120, 150),  # one generation; the client has long gone after two minutes
    "index": (6 * 3600, 6 * 3600 + 300),  # one corpus shard of a large SAE
    "explain": (600, 660),  # one batch of explanations (may call an LLM over HTTP)
    "warm": (1800, 1860),  # loading a live worker's models at start (large ones from disk)
}


def time_limits(queue: str) -> dict[str, int]:
    """Task decorator kwargs for a queue: `@app.task(**time_limits("index"))`."""
    kind = "live" if queue.startswith("live.") or queue == "live" else queue
    soft, hard = TIME_LIMITS[kind]
    return {"soft_time_limit": soft, "time_limit": hard}


app.conf.update(
    # Declared queues; `live.<model>` for models added later are created on demand.
    task_queues=[Queue(name) for name in BATCH_QUEUES],
    task_create_missing_queues=True,
    # Health pings go to `index` unless the caller names a queue (tests ping live.* too).
    task_routes={"workers.health.*": {"queue": INDEX_QUEUE}},
    # Ack after the task finishes: a worker killed mid-task (OOM, preemption) gives the task
    # back instead of losing it. Tasks are idempotent (they tolerate a second run).
    task_acks_late=True,
    # With acks_late, a task whose worker process died is rejected and requeued.
    task_reject_on_worker_lost=True,
    # Take one task at a time: a long index shard must not hold other tasks hostage in a
    # busy worker's prefetch buffer while idle workers wait.
    worker_prefetch_multiplier=1,
    # JSON only: messages carry ids and plain values, never pickles.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Results are small (ids, counts) and only needed for a short while.
    result_expires=3600,
    # Broker connection retries forever at start-up: the worker may start before Redis does.
    broker_connection_retry_on_startup=True,
    # Redis redelivers an un-acked task after the visibility timeout (default 1 h). With
    # acks_late, a long index shard would be handed to a second worker while the first still
    # runs, so the timeout must exceed the longest hard time limit.
    broker_transport_options={"visibility_timeout": max(h for _, h in TIME_LIMITS.values()) + 300},
    # Each worker also consumes a queue of its own (`<node name>.dq`), so the warm-up it sends
    # itself at start (workers/warmup.py) reaches it, not whichever worker of a shared
    # live.<model> queue is idle first (which left the other worker cold).
    worker_direct=True,
    # Send task-started events so "running" differs from "queued" in flower / IndexRun.
    task_track_started=True,
    # Task modules the worker imports at start (one module per queue; add yours here).
    include=[
        "workers.health",
        "workers.index",
        "workers.evals",
        "workers.live",
        "workers.live_activations",
        "workers.warmup",
        "workers.explain",
        "workers.importance",
        "workers.embeddings",
        "workers.showcases",
    ],
)
