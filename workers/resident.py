"""Models and SAEs resident in a worker process, loaded once and reused by its tasks.

A worker serves one model (DESIGN.md §7), so the cache keeps the few most recently used
(model, SAE) pairs and drops older ones. Heavy imports happen on first use, in the child.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_RESIDENT = 2

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, str], Any] = OrderedDict()


def attached_sae(model_source: str, sae_source: str) -> Any:
    """The engine's AttachedSAE for stored sources ("demo", a path, a hub id / release:id)."""
    from workers.engine.loading import attach_sae, load_model, load_sae

    key = (model_source, sae_source)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        lm = next((a.lm for (m, _), a in _cache.items() if m == model_source), None)
        lm = lm or load_model(model_source)
        att = attach_sae(lm, load_sae(sae_source, device=str(lm.device)))
        _cache[key] = att
        while len(_cache) > MAX_RESIDENT:
            _cache.popitem(last=False)
        return att


def attached_for(sae_row: Any) -> Any:
    """AttachedSAE for an explorer.saes SAE row."""
    return attached_sae(sae_row.model.source, sae_row.source)
