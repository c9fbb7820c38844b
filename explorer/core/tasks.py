"""The web's one door to the workers: tasks sent by their registered names.

`explorer/` never imports `workers/` (dependencies run one way: workers import explorer
services), but for the engine's torch-free contract modules listed in
tests/explorer/test_dependencies.py. Every task the web starts is named here, sent with
`send()`, and routed to a queue named here; `workers/celery.py` imports the queue names from
this module, and a test asserts that every name below is a task of the worker app.

Queues (see docs/architecture.md): `live.<model>` per model for interactive work (steering,
testing text), `index` and `explain` for batch work, so an hour-long indexing job never sits
in front of a slider move.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.result import AsyncResult

INDEX_QUEUE = "index"
EXPLAIN_QUEUE = "explain"
BATCH_QUEUES = (INDEX_QUEUE, EXPLAIN_QUEUE)

# Registered names (`@app.task(name=...)` in workers/): fixed, as queued messages carry them.
STEER = "workers.live.steer"
BUILD_VECTOR = "workers.live.build_vector"
TEXT_ACTIVATIONS = "workers.live_activations.text_activations"
MODEL_TEXT_ACTIVATIONS = "workers.live_activations.model_text_activations"
EMBED_QUERY = "workers.embeddings.embed_query"
EMBED_EXPLANATIONS = "workers.embeddings.embed_explanations"
EXPLAIN_BATCH = "workers.explain.explain_batch"
EXPLAIN_RETRY_FAILED = "workers.explain.explain_retry_failed"
INDEX_SHARD = "workers.index.index_shard"
INDEX_FINISH = "workers.index.index_finish"
SAE_MAP = "workers.index.sae_map"
EVAL_SAE = "workers.evals.evaluate_sae"
SHOWCASES = "workers.showcases.compute_showcases"
IMPORTANCE_FEATURE = "workers.importance.compute_feature"
IMPORTANCE_FEATURES = "workers.importance.compute_features"
PING = "workers.health.ping"
WARM_UP = "workers.warmup.warm_up"

TASK_NAMES = (
    STEER,
    BUILD_VECTOR,
    TEXT_ACTIVATIONS,
    MODEL_TEXT_ACTIVATIONS,
    EMBED_QUERY,
    EMBED_EXPLANATIONS,
    EXPLAIN_BATCH,
    EXPLAIN_RETRY_FAILED,
    INDEX_SHARD,
    INDEX_FINISH,
    SAE_MAP,
    EVAL_SAE,
    SHOWCASES,
    IMPORTANCE_FEATURE,
    IMPORTANCE_FEATURES,
    PING,
    WARM_UP,
)


def live_queue(model: str) -> str:
    """The live queue of model slug `model`."""
    return f"live.{model}"


# A client only: it sends messages and reads results; it defines no task. Settings are read
# lazily (CELERY_* in explorer/settings.py), so importing this configures nothing yet.
client = Celery("explorer")
client.config_from_object("django.conf:settings", namespace="CELERY")


def signature(
    name: str, *, queue: str, args: tuple = (), kwargs: dict[str, Any] | None = None, **options: Any
):
    """A signature of task `name` on `queue` (for chords and groups)."""
    return client.signature(name, args=args, kwargs=kwargs or {}, queue=queue, **options)


def send(
    name: str, *, queue: str, args: tuple = (), kwargs: dict[str, Any] | None = None, **options: Any
) -> AsyncResult:
    """Send task `name` to `queue`; `options` are Celery's (expires, countdown, ...)."""
    return client.send_task(name, args=args, kwargs=kwargs or {}, queue=queue, **options)
