"""Warm a live worker at start: load its models and SAEs before the first reader waits.

When a worker is ready, it sends itself (on its own direct queue, so that of two workers on
one live queue each warms its own copy) a `warm_up` for each `live.<model>` queue it consumes
(and `manage.py demo` sends one to the live queue once it has registered the demo SAE); the task
loads that model and every registered SAE of it into this process's resident copy
(workers/resident.py), runs one short text through them, and records "loading" then "ready"
(explorer/activations/services.py), so the first "test with your text" or steering request
does not wait for the load and the page can say when it would. With several processes per
worker only the one that takes the task is warmed; the others load on first use as before.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from celery.utils.nodenames import worker_direct
from django.conf import settings

from explorer.activations import services as activation_services
from explorer.core.tasks import INDEX_QUEUE, WARM_UP, live_queue
from explorer.saes.models import SAE
from workers import resident
from workers.celery import app, time_limits

log = logging.getLogger(__name__)

WARM_MAP = "workers.index.warm_map"  # sent by name: workers.index imports the engine's modules

WARM_TEXT = "Hello world."  # one short forward pass, so first-call costs are paid here too


@app.task(name=WARM_UP, ignore_result=True, **time_limits("warm"))
def warm_up(model_slug: str) -> None:
    """Load `model_slug` and its SAEs here; tolerates an unknown model (logs and returns)."""
    from workers.live_activations import activations_for_text

    saes = list(SAE.objects.filter(model__slug=model_slug).select_related("model"))
    if not saes:
        log.info("warm_up: no SAE of model %r is registered yet", model_slug)
        return
    activation_services.model_warm_state_set(
        model_slug=model_slug, state=activation_services.WARM_LOADING
    )
    loaded = 0
    for sae in saes:
        try:
            activations_for_text(resident.attached_for(sae), WARM_TEXT, index=None, top_k=1)
        except Exception:  # a broken SAE must not keep the others cold; its requests will say
            log.exception("warm_up: could not load %s", sae)
        else:
            loaded += 1
    activation_services.model_warm_state_set(
        model_slug=model_slug, state=activation_services.WARM_READY
    )
    log.info("warm_up: %s loaded with %d of %d SAE(s)", model_slug, loaded, len(saes))


def live_models(queue_names: list[str]) -> list[str]:
    """The models of the `live.<model>` queues among `queue_names`.

    >>> live_models(["index", "live.demo", "live.gpt2-small"])
    ['demo', 'gpt2-small']
    """
    return [q.removeprefix("live.") for q in queue_names if q.startswith("live.")]


@worker_ready.connect
def send_warm_up(sender: Any = None, **kwargs: Any) -> None:
    """In the worker's main process (no torch here): queue one warm_up per live queue it
    consumes, on its own direct queue, and on a worker of the `index` queue one warm_map
    (workers/index.py) unless INDEX_WARM_MAP is off."""
    app_ = getattr(sender, "app", app)
    hostname = getattr(sender, "hostname", None)
    queues = list(app_.amqp.queues.consume_from)
    for model in live_models(queues):
        queue = worker_direct(hostname) if hostname else live_queue(model)
        warm_up.apply_async(args=(model,), queue=queue)
    if INDEX_QUEUE in queues and hostname and settings.INDEX_WARM_MAP:
        app_.send_task(WARM_MAP, queue=worker_direct(hostname))
