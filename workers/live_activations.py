"""Tasks for the live.<model> queue: feature activations on a text ("test with your text",
"top features for a text"), and the top features of a text in several SAEs of the model at
once (the search box's `text:` over a whole model: one forward pass for all of them).

The tasks are sent by name by the web's activation services (explorer/activations), which wait
for the result and cache it. The engine (torch) is imported inside functions only, in the
prefork child (workers/celery.py explains why).

Models and SAEs stay loaded in the worker process between tasks, in the one per-process cache
the other tasks use too (workers/resident.py), so a worker holds one copy of its model.
"""

from __future__ import annotations

import logging
from typing import Any

from explorer.saes import selectors as sae_selectors
from workers import resident
from workers.celery import app, time_limits

log = logging.getLogger(__name__)


def activations_for_text(att: Any, text: str, *, index: int | None, top_k: int) -> dict:
    """Per-token values of feature `index` on `text`, or the `top_k` features with the largest
    activation anywhere in it (index None). BOS is left out of tokens and maxima.

    Raises ValueError for an empty or too-long text or an unknown index (engine messages).
    """
    from workers.engine.activations import feature_activations

    (row,) = feature_activations(att, text, None if index is None else [index])
    return _summary(row, index=index, top_k=top_k)


def top_features_per_sae(atts: list[Any], text: str, *, top_k: int) -> list[dict]:
    """`activations_for_text(att, text, index=None, top_k=top_k)` of each SAE in `atts` (all
    on one model), in their order, from one forward pass (engine activations_per_sae).

    Raises ValueError for an empty or too-long text (engine messages).
    """
    from workers.engine.activations import activations_per_sae

    return [_summary(row, index=None, top_k=top_k) for row in activations_per_sae(atts, text)]


def _summary(row: Any, *, index: int | None, top_k: int) -> dict:
    """The answer for one SAE's TextActivations `row`: feature `index`'s values (its one
    column), or the `top_k` largest maxima over the text (all columns, index None)."""
    import torch

    keep = [i for i, bos in enumerate(row.is_bos) if not bos]
    values = row.values[keep]  # [pos, n_features]
    out: dict[str, Any] = {
        "tokens": [row.tokens[i] for i in keep],
        "token_ids": [row.token_ids[i] for i in keep],
        "values": None,
        "max_activation": 0.0,
        "top_features": [],
    }
    if values.shape[0] == 0:
        return out
    if index is not None:
        column = values[:, 0]  # [pos]
        out["values"] = [round(float(v), 4) for v in column.tolist()]
        out["max_activation"] = float(column.max())
        return out
    peak, where = values.max(dim=0)  # [d_sae], [d_sae]
    top_v, top_i = torch.topk(peak, min(top_k, peak.shape[0]))  # [k]
    out["top_features"] = [
        {"index": int(i), "max_value": float(v), "position": int(where[i])}
        for v, i in zip(top_v.tolist(), top_i.tolist(), strict=True)
        if v > 0
    ]
    out["max_activation"] = float(top_v[0]) if len(top_v) else 0.0
    return out


@app.task(name="workers.live_activations.text_activations", **time_limits("live"))
def text_activations(*, sae_id: int, text: str, index: int | None = None, top_k: int = 20) -> dict:
    """Activations of SAE `sae_id` on `text` (see activations_for_text).

    Returns {"error", "code"} rather than raising for problems the caller can fix (an unknown
    SAE, a text the model cannot take), so the web process can show the message.
    """
    sae = sae_selectors.sae_by_id(sae_id=sae_id)
    if sae is None:
        log.warning("text_activations: SAE %s no longer exists", sae_id)
        return {"error": f"SAE {sae_id} no longer exists.", "code": "not_found"}
    att = resident.attached_for(sae)
    try:
        return activations_for_text(att, text, index=index, top_k=top_k)
    except ValueError as exc:
        return {"error": str(exc), "code": "invalid_text"}


@app.task(name="workers.live_activations.model_text_activations", **time_limits("live"))
def model_text_activations(*, sae_ids: list[int], text: str, top_k: int = 20) -> dict:
    """The top features of `text` in each of SAEs `sae_ids` (all of one model), from one
    forward pass: {"results": [{"sae_id", **text_activations' answer}]} in the order given.

    Returns {"error", "code"} rather than raising for problems the caller can fix (an SAE
    gone, SAEs of several models, a text the model cannot take).
    """
    saes = [sae_selectors.sae_by_id(sae_id=pk) for pk in sae_ids]
    gone = [pk for pk, sae in zip(sae_ids, saes, strict=True) if sae is None]
    if gone:
        log.warning("model_text_activations: SAEs %s no longer exist", gone)
        return {"error": f"SAE(s) {gone} no longer exist.", "code": "not_found"}
    if len({sae.model_id for sae in saes}) != 1:
        return {"error": "Give the SAEs of one model.", "code": "invalid_scope"}
    atts = [resident.attached_for(sae) for sae in saes]
    try:
        answers = top_features_per_sae(atts, text, top_k=top_k)
    except ValueError as exc:
        return {"error": str(exc), "code": "invalid_text"}
    return {
        "results": [{"sae_id": sae.pk, **answer} for sae, answer in zip(saes, answers, strict=True)]
    }
