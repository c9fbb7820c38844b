"""Tasks for feature importance under ablation.

- `compute_feature` (one feature, on demand from the feature page) runs on the model's
  `live.<model>` queue, beside steering: it is a few forward passes and a person is waiting.
- `compute_features` (a chunk of a bulk run over an SAE) runs on `index`.

Both claim their rows (queued -> running, a conditional UPDATE), read the features' stored
example windows and statistics, call the engine (workers/engine/importance.py) on the resident
model, and write each result; progress is recorded per batch. Messages carry feature ids; a
missing or already-claimed row is skipped. The engine is imported inside functions only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict

from celery.exceptions import SoftTimeLimitExceeded

from explorer.importance import selectors, services
from explorer.saes import selectors as sae_selectors
from workers import resident
from workers.celery import app, time_limits

log = logging.getLogger(__name__)


def compute_importance(feature_ids: Sequence[int]) -> int:
    """Compute and store the importance of the claimable features among `feature_ids` (one SAE
    per call in practice; grouped by SAE anyway). Returns how many were stored."""
    from workers.engine.importance import activation_pool, choose_contexts, feature_importance
    from workers.engine.interventions import FeatureStats

    claimed = services.importance_start(feature_ids=feature_ids)
    if not claimed:
        return 0
    stored = 0
    for sae, ids in sae_selectors.features_by_sae(feature_ids=claimed):
        try:
            inputs = selectors.importance_inputs(feature_ids=ids)
            att = resident.attached_for(sae)
            by_index = {i.index: i for i in inputs}
            stats = {
                i.index: FeatureStats(
                    mean=i.mean,
                    samples=activation_pool(
                        density=i.density,
                        hist_edges=i.hist_edges,
                        hist_counts=i.hist_counts,
                        seed=i.index,
                    ),
                )
                for i in inputs
            }

            def progress(done: float, total: int, ids=ids) -> None:
                services.importance_progress(feature_ids=ids, progress=done / max(total, 1))

            contexts = {i.index: choose_contexts(i.top, i.quantile_bins) for i in inputs}
            results = feature_importance(
                att, contexts, stats=stats, methods=selectors.METHODS, progress=progress
            )
            for res in results:
                services.importance_store(
                    feature_id=by_index[res.feature].feature_id, result=asdict(res)
                )
                stored += 1
        except SoftTimeLimitExceeded:
            services.importance_fail(feature_ids=ids, error="Timed out; try again.")
            raise
        except Exception as exc:  # a bad checkpoint or stat: record it where the page shows it
            log.exception("importance of features %s failed", ids)
            services.importance_fail(feature_ids=ids, error=f"{type(exc).__name__}: {exc}")
    return stored


@app.task(name="workers.importance.compute_feature", **time_limits("live"))
def compute_feature(*, feature_id: int) -> int:
    """One feature's importance (sent on `live.<model>` by importance_request)."""
    return compute_importance([feature_id])


@app.task(name="workers.importance.compute_features", **time_limits("index"))
def compute_features(*, feature_ids: list[int]) -> int:
    """A chunk of a bulk run (sent on `index` by importance_bulk_request)."""
    return compute_importance(feature_ids)
