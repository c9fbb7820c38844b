"""Tasks for the live.<model> queues: streamed steered generation and CAA steering vectors.

A `steer` task does not wait for its generation. It decodes the engine's `SteerRequest` (the
one wire format, workers/engine/specs.py), hands the job to the model's one `BatchScheduler`
(workers/resident.py: every run of this process decodes in one batch) and returns, so a worker
with a single prefork child still takes the next request at once and concurrent sessions share
forward passes (DESIGN.md §5). The run's frames, heartbeats and cancels are the publisher's
(workers/steer_publisher.py); finished results are stored through explorer.steering.services.

Live tasks are acked early: a live request is worth nothing once its client gave up, so a dead
worker's request is never redelivered.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from explorer.steering import selectors, services
from workers import resident
from workers.celery import app, time_limits
from workers.engine.specs import SpecError, SteerRequest
from workers.steer_publisher import Publisher, Run

log = logging.getLogger(__name__)


def _store(batch: list[tuple[Run, Any]]) -> list[str | None]:
    """Store finished runs (on the publisher's database thread), all in one INSERT. The
    connection is kept between stores (a new one costs milliseconds) and replaced only after
    it failed."""
    generations = [
        services.FinishedGeneration(
            request=run.context,
            default_text=result.default.text,
            default_tokens=result.default.tokens,
            steered_text=result.steered.text,
            steered_tokens=result.steered.tokens,
            alternatives=run.alternatives,
        )
        for run, result in batch
    ]
    try:
        return services.steering_results_store(generations=generations)
    except DatabaseError:  # e.g. the server restarted: one retry on a fresh connection
        connection.close()
        return services.steering_results_store(generations=generations)


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    """This process's publisher, started by its first live task (in the prefork child)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            _publisher = Publisher(settings.REDIS_URL, store=_store)
        return _publisher


def start(payload: dict[str, Any]) -> None:
    """Open the run, load what it needs, hand it to the scheduler. Never waits for it."""
    pub = publisher()
    try:
        request = SteerRequest.from_dict(payload["request"])
    except (SpecError, KeyError, TypeError) as exc:  # a message from an incompatible web
        log.error("steer: refused payload of run %s: %s", payload.get("run"), exc)
        return
    run = Run(run_id=payload["run"], key=request.key(), context=request)
    if not pub.open(run):  # superseded while it waited in the queue
        return

    def on_token(row: str, token: int, text: str) -> None:
        if run.on_token(row, token, text):
            pub.notify()

    try:
        # Imported once the run is open: the engine's first import takes seconds (tens on a
        # loaded machine), and the run's heartbeat tells the web meanwhile that a worker took it.
        from workers.engine.generation import prepare_request_job

        att = resident.attached_sae(request.model, request.sae)
        job = prepare_request_job(
            att,
            request,
            on_token=on_token,
            cancel=lambda: run.cancelled,
            client=_client(payload),
        )
        finish = job.finish

        def finish_and_wake(outputs: dict, cancelled: bool) -> Any:
            result = finish(outputs, cancelled)
            pub.notify()  # publish `done` now rather than at the next flush tick
            return result

        job.finish = finish_and_wake
        run.token_strings = att.lm.token_strings
        run.handle = resident.scheduler(request.model).submit(job)
    except Exception as exc:
        if not isinstance(exc, ValueError):
            log.exception("preparing run %s failed", run.run_id)
        pub.fail(run, str(exc))


def _client(payload: dict[str, Any]) -> str | None:
    """The run's client tag, whom the scheduler takes turns between (None: a web that sends
    none, whose runs then share one turn)."""
    client = payload.get("client")
    return client if isinstance(client, str) else None


@app.task(name="workers.live.steer", acks_late=False, ignore_result=True, **time_limits("live"))
def steer(payload: dict[str, Any]) -> None:
    """Start one streamed generation: {"run": <run id>, "request": SteerRequest.to_dict(),
    "client": <client tag, optional>} (ResolvedSteer.payload in explorer/steering/selectors.py).
    Returns at once."""
    start(payload)


@app.task(
    name="workers.live.build_vector", acks_late=False, ignore_result=True, **time_limits("live")
)
def build_vector(vector_id: int) -> None:
    """Build a pending CAA SteeringVector from its contrast pairs and decompose it into the
    SAE's features; a missing row is logged and skipped."""
    job = selectors.vector_build_job(vector_id=vector_id)
    if job is None:
        log.warning("steering vector %s is gone; nothing to build", vector_id)
        return
    try:
        from workers.engine.caa import caa_vector, decompose

        att = resident.attached_sae(job.model_source, job.sae_source)
        triples = [(p["prompt"], p["positive"], p["negative"]) for p in job.pairs]
        v = caa_vector(att.lm, att.hook_name, triples, prepend_bos=att.preprocessing.prepend_bos)
        parts = decompose(att, v, k=10)
    except ValueError as exc:
        services.steering_vector_fail(vector_id=vector_id, error=str(exc))
        return
    except Exception as exc:
        log.exception("building steering vector %s failed", vector_id)
        services.steering_vector_fail(vector_id=vector_id, error=f"internal error: {exc}")
        raise
    features = [
        {"index": i, "cosine": round(c, 6), "weight": round(w, 6)}
        for i, c, w in zip(parts.features, parts.cosines, parts.weights, strict=True)
    ]
    services.steering_vector_finish(
        vector_id=vector_id,
        vector=[float(x) for x in v.tolist()],
        features=features,
        residual_fraction=parts.residual_fraction,
    )
