"""Models and SAEs resident in a worker process: one copy of each model, shared by every task.

Live steering, activation tests, importance and CAA vectors all ask here, so a worker process
holds each model once, with the SAEs attached to it and (for steering) one `BatchScheduler`
decoding all its concurrent generations. A worker serves one model (DESIGN.md §7); the few
most recently used models are kept and older ones dropped, their scheduler closed.

Heavy imports happen on first use, in the prefork child (workers/celery.py says why). In a
thread-pool worker (deploy/'s live workers) the first task to start imports the engine while
the others wait (`import_engine_once`): transformers resolves its classes lazily, and two
threads importing it at once can see a half-initialised module ("cannot import name
'DynamicCache' from 'transformers'", seen when a steer arrived during the warm-up).
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.signals import task_prerun

if TYPE_CHECKING:
    from explorer.saes.models import SAE
    from workers.engine.loading import AttachedSAE, LoadedModel
    from workers.engine.scheduler import BatchScheduler

MAX_MODELS = 2
# Rows one scheduler decodes together: 32 sessions (a default and a steered row each). Further
# requests wait in its inbox for a free slot.
MAX_ROWS = 64


@dataclass
class _Resident:
    lm: LoadedModel
    saes: dict[str, AttachedSAE] = field(default_factory=dict)
    scheduler: BatchScheduler | None = None


_lock = threading.Lock()
_models: OrderedDict[str, _Resident] = OrderedDict()

# What the tasks of a live worker import: loading, generation (transformers' DynamicCache), the
# scheduler and activations.
ENGINE_MODULES = (
    "workers.engine.loading",
    "workers.engine.generation",
    "workers.engine.scheduler",
    "workers.engine.activations",
)
_import_lock = threading.Lock()
_engine_imported = False


@task_prerun.connect
def import_engine_once(**kwargs: Any) -> None:
    """Before a task of a thread-pool worker: import the engine, one thread at a time, once
    per process. A prefork child runs its tasks on its main thread, one at a time: nothing to
    do there (and its light tasks, such as health pings, import nothing)."""
    global _engine_imported
    if _engine_imported or threading.current_thread() is threading.main_thread():
        return
    with _import_lock:
        if not _engine_imported:
            for name in ENGINE_MODULES:
                importlib.import_module(name)
            _engine_imported = True


def _resident(model_source: str) -> _Resident:
    """The resident entry of `model_source`, loading it if needed (call with _lock held)."""
    from workers.engine.loading import load_model

    entry = _models.get(model_source)
    if entry is None:
        entry = _models[model_source] = _Resident(lm=load_model(model_source))
        while len(_models) > MAX_MODELS:
            _, old = _models.popitem(last=False)
            if old.scheduler is not None:
                old.scheduler.close()
    _models.move_to_end(model_source)
    return entry


def attached_sae(model_source: str, sae_source: str) -> AttachedSAE:
    """The engine's AttachedSAE for stored sources ("demo", a path, a hub id / release:id),
    on this process's one copy of the model."""
    from workers.engine.loading import attach_sae, load_sae

    with _lock:
        entry = _resident(model_source)
        att = entry.saes.get(sae_source)
        if att is None:
            att = entry.saes[sae_source] = attach_sae(
                entry.lm, load_sae(sae_source, device=str(entry.lm.device))
            )
        return att


def attached_for(sae: SAE) -> AttachedSAE:
    """`attached_sae` of an explorer SAE row (its model's source and its own)."""
    return attached_sae(sae.model.source, sae.source)


def scheduler(model_source: str) -> BatchScheduler:
    """The one scheduler decoding every steered generation of this model in this process."""
    from workers.engine.scheduler import BatchScheduler

    with _lock:
        entry = _resident(model_source)
        if entry.scheduler is None:
            entry.scheduler = BatchScheduler(entry.lm, max_rows=MAX_ROWS)
        return entry.scheduler


def loaded_models() -> list[str]:
    """Sources of the models resident now, least recently used first."""
    with _lock:
        return list(_models)
