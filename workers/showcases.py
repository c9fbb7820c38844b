"""Task for the `index` queue: an SAE's steering showcases, computed after it is indexed.

Thin (STYLE.md workers §1): the candidates (the compute budget: SHOWCASE_CANDIDATES features by
density × top logit effect, each at STRENGTH_MULTIPLES of its max activation) are read from the
index, scored by the engine's criterion (workers/engine/showcases.py) on the resident model, and
the best SHOWCASE_COUNT replace the SAE's showcases. The engine is imported inside functions.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE
from explorer.showcases import selectors, services
from explorer.showcases.services import ShowcaseRow
from workers.celery import app, time_limits
from workers.resident import attached_for

log = logging.getLogger(__name__)

# Strengths tried per candidate, in units of its max activation: weaker ones rarely change the
# text on the demo model, stronger ones rarely stay fluent (docs/benchmarks.md, showcases).
STRENGTH_MULTIPLES = (2.0, 4.0)


def compute_showcases_for(sae: SAE) -> int:
    """Score `sae`'s candidates and store its best showcases; returns how many were stored."""
    from workers.engine.showcases import (
        DEFAULT_PROMPTS,
        Candidate,
        ShowcaseSettings,
        pick_showcases,
        score_candidates,
    )

    candidates = selectors.showcase_candidates(sae=sae, limit=settings.SHOWCASE_CANDIDATES)
    if not candidates:
        return services.showcases_replace(sae=sae, rows=[])
    # 3 significant digits: the strength scored is the one the steering page's URL carries.
    steered = [
        Candidate(c.index, float(f"{c.max_activation * m:.3g}"))
        for c in candidates
        for m in STRENGTH_MULTIPLES
    ]
    targets = {c.index: c.top_logit_ids for c in candidates if c.top_logit_ids}
    config = ShowcaseSettings()
    scores = score_candidates(
        attached_for(sae), steered, DEFAULT_PROMPTS, targets=targets, settings=config
    )
    picked = pick_showcases(scores, settings.SHOWCASE_COUNT)
    labels = selectors.feature_labels(sae=sae, indices=[p.feature for p in picked])
    sampling = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "seed": config.seed,
        "max_new_tokens": config.max_new_tokens,
    }
    rows = []
    for p in picked:
        best = p.prompts[p.best_prompt]
        rows.append(
            ShowcaseRow(
                feature_index=p.feature,
                prompt=DEFAULT_PROMPTS[p.best_prompt],
                strength=p.strength,
                score=p.effect,
                fluency_drop=p.fluency_drop,
                distinct=p.distinct,
                text=best.text,
                default_text=best.default_text,
                label=labels.get(p.feature, ""),
                settings=sampling,
            )
        )
    return services.showcases_replace(sae=sae, rows=rows)


@app.task(name="workers.showcases.compute_showcases", **time_limits("index"))
def compute_showcases(sae_id: int) -> dict[str, Any]:
    """Compute and store SAE `sae_id`'s showcases (skipped when the SAE is gone)."""
    sae = sae_selectors.sae_by_id(sae_id=sae_id)
    if sae is None:
        log.info("showcases: SAE %s is gone", sae_id)
        return {"sae": sae_id, "skipped": True}
    t0 = time.perf_counter()
    n = compute_showcases_for(sae)
    seconds = time.perf_counter() - t0
    log.info("showcases of SAE %s: %d stored in %.1f s", sae_id, n, seconds)
    return {"sae": sae_id, "showcases": n, "seconds": seconds}
