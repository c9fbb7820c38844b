"""The SAE evaluation task (`index` queue) and the work it shares with `manage.py eval_sae`.

Thin (STYLE.md workers §1): an evaluation id in, the row claimed and written through
explorer.saes.evaluations, the metrics computed by workers/engine/evals.py. The engine's torch
modules are imported inside function bodies only (see workers/celery.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from explorer.saes import evaluations as svc
from workers.celery import app, time_limits
from workers.engine.corpus import iter_documents, parse_corpus_spec
from workers.resident import attached_for

if TYPE_CHECKING:
    from explorer.saes.models import SAEEvaluation
    from workers.engine.evals import SAEMetrics

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0


def run_evaluation(
    evaluation: SAEEvaluation, progress: Callable[[int, int], None] | None = None
) -> tuple[SAEMetrics, float]:
    """Evaluate the row's SAE on its corpus; returns the metrics and the seconds it took.
    Raises the engine's ValueError/CorpusError for bad input."""
    from workers.engine.evals import evaluate_sae, held_out_windows

    t0 = time.perf_counter()
    att = attached_for(evaluation.sae)
    windows = held_out_windows(
        att,
        iter_documents(parse_corpus_spec(evaluation.corpus)),
        tokens=evaluation.tokens,
        skip_tokens=evaluation.skip_tokens,
    )
    metrics = evaluate_sae(att, windows, progress=progress)
    return metrics, time.perf_counter() - t0


@app.task(name="workers.evals.evaluate_sae", **time_limits("index"))
def evaluate_sae(evaluation_id: int) -> dict[str, Any]:
    """Claim evaluation `evaluation_id`, compute and store its metrics; skipped when the row
    is gone or already taken (a redelivered message). A failure is recorded on the row."""
    evaluation = svc.evaluation_claim(evaluation_id=evaluation_id)
    if evaluation is None:
        log.info("evaluation %s: not queued (done, taken or gone); skipped", evaluation_id)
        return {"evaluation": evaluation_id, "skipped": True}
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            svc.evaluation_progress(evaluation=evaluation, done=done, total=total)

    try:
        metrics, seconds = run_evaluation(evaluation, progress)
    except Exception as e:
        svc.evaluation_failed(evaluation_id=evaluation_id, error=str(e) or type(e).__name__)
        raise
    svc.evaluation_store(evaluation=evaluation, metrics=metrics.to_dict(), seconds=seconds)
    return {"evaluation": evaluation_id, "seconds": seconds, **metrics.to_dict()}
