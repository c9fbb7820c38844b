"""Activation tests on a live worker: a feature's per-token activations on a text ("test with
your text"), or the features that fire most on it (POST /api/v1/activations/test, and the
search box's `text:` queries).

The model runs on a worker of the model's `live.<model>` queue (task TEXT_ACTIVATIONS, sent by
name); this process waits for the answer, at most EXPLORER_LIVE_TIMEOUT_S, and caches it: the
same text on the same SAE always gives the same values.
"""

from __future__ import annotations

import hashlib
import logging

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.core.health import worker_queues
from explorer.explanations import selectors as explanation_selectors
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE

log = logging.getLogger(__name__)

MAX_TOP_K = 100
# Cached results live this long: the same text on the same SAE always gives the same values,
# so only memory bounds it.
RESULT_CACHE_SECONDS = 24 * 3600


def test_text_max_chars() -> int:
    """Longest text accepted for an activation test (settings.EXPLORER_TEST_TEXT_MAX_CHARS)."""
    return settings.EXPLORER_TEST_TEXT_MAX_CHARS


def live_timeout_s() -> float:
    """How long a request waits for a live worker (settings.EXPLORER_LIVE_TIMEOUT_S)."""
    return settings.EXPLORER_LIVE_TIMEOUT_S


# A live worker loads its models at start (workers/warmup.py) and says how far it got, so a
# page can tell the reader that the first test waits for the model to load.
WARM_LOADING, WARM_READY = "loading", "ready"
# "loading" expires, so a worker killed while loading does not say so for ever.
WARM_LOADING_SECONDS = 15 * 60


def model_warm_state_set(*, model_slug: str, state: str) -> None:
    """Record that a live worker is loading (WARM_LOADING) or holds (WARM_READY) a model."""
    timeout = WARM_LOADING_SECONDS if state == WARM_LOADING else None
    cache.set(f"livewarm:v1:{model_slug}", state, timeout=timeout)


def model_warm_state(*, model_slug: str) -> str | None:
    """WARM_LOADING, WARM_READY, or None when no worker said (not started, or an older one)."""
    try:
        return cache.get(f"livewarm:v1:{model_slug}")
    except Exception:  # a page must render without Redis; the state is only a hint
        log.warning("live model state unavailable", exc_info=True)
        return None


class LiveWorkerUnavailable(ApplicationError):
    status = 503
    code = "no_live_worker"


class LiveWorkerTimeout(ApplicationError):
    status = 504
    code = "live_timeout"


def _cache_key(sae: SAE, text: str, index: int | None, top_k: int) -> str:
    digest = hashlib.sha256(
        f"{sae.pk}\0{sae.source}\0{index}\0{top_k}\0{text}".encode()
    ).hexdigest()
    return f"acttest:v1:{digest}"


# A broadcast to find consumers waits HEALTHZ_INSPECT_TIMEOUT whatever the answer, so a "yes"
# is remembered (in the shared cache) for this long; a "no" is asked again every time.
CONSUMER_CACHE_SECONDS = 60


def _queue_has_consumer(queue: str) -> bool:
    key = f"live-consumer:{queue}"
    if cache.get(key):
        return True
    queues = worker_queues()
    found = bool(queues and queues.get(queue))
    if found:
        cache.set(key, True, CONSUMER_CACHE_SECONDS)
    return found


def _run_on_worker(*, sae: SAE, text: str, index: int | None, top_k: int) -> dict:
    queue = tasks.live_queue(sae.model.slug)
    if not _queue_has_consumer(queue):
        raise LiveWorkerUnavailable(
            f"No live worker serves model {sae.model.slug} right now (queue {queue}); "
            "try again later."
        )
    result = tasks.send(
        tasks.TEXT_ACTIVATIONS,
        queue=queue,
        expires=live_timeout_s(),
        kwargs={"sae_id": sae.pk, "text": text, "index": index, "top_k": top_k},
    )
    try:
        answer = result.get(timeout=live_timeout_s(), propagate=False)
    except CeleryTimeout:
        result.revoke()
        cache.delete(f"live-consumer:{queue}")
        raise LiveWorkerTimeout(
            f"The live worker for {sae.model.slug} did not answer within "
            f"{live_timeout_s():g} s; try again later."
        ) from None
    finally:
        result.forget()
    if isinstance(answer, TaskRevokedError):  # expired in the queue behind other work
        raise LiveWorkerTimeout(f"The live worker for {sae.model.slug} is busy; try again later.")
    if isinstance(answer, Exception) or not isinstance(answer, dict):
        log.error("activation test on %s failed: %r", sae, answer)
        raise ApplicationError(
            "The live worker failed on this text.", code="live_failed", status=502
        )
    if "error" in answer:
        raise ApplicationError(answer["error"], code=answer.get("code", "invalid_text"))
    return answer


def activation_test(
    *, model_slug: str, sae_slug: str, text: str, index: int | None = None, top_k: int = 20
) -> dict:
    """Per-token activations of feature `index` on `text`, or (index None) the `top_k` features
    that fire most on it, computed by a live worker and cached by (SAE, text, index).

    Returns {tokens, token_ids, values (index given, else null), max_activation,
    top_features: [{index, max_value, position, explanation}] (index None, else [])}; the
    BOS token is left out. Raises NotFound (model/SAE), ApplicationError (empty or over-long
    text, index out of range), LiveWorkerUnavailable (503), LiveWorkerTimeout (504).
    """
    sae = sae_selectors.sae_get(model_slug=model_slug, slug=sae_slug)
    if not text.strip():
        raise ApplicationError("Type a text to test.", code="empty_text")
    if len(text) > test_text_max_chars():
        raise ApplicationError(
            f"The text is {len(text)} characters long; the limit is {test_text_max_chars()}.",
            code="text_too_long",
        )
    if index is not None and not 0 <= index < sae.d_sae:
        raise ApplicationError(
            f"{sae} has features 0 to {sae.d_sae - 1}; there is no feature {index}.",
            code="invalid_index",
            status=404,
        )
    top_k = max(1, min(top_k, MAX_TOP_K))
    key = _cache_key(sae, text, index, top_k)
    answer = cache.get(key)
    if answer is None:
        answer = _run_on_worker(sae=sae, text=text, index=index, top_k=top_k)
        cache.set(key, answer, RESULT_CACHE_SECONDS)
    top = answer.get("top_features") or []
    if top:
        rows = sae_selectors.feature_ids(sae=sae, indices=[t["index"] for t in top])
        best = explanation_selectors.best_explanations(feature_ids=rows.values())
        top = [
            {
                **t,
                "explanation": best[rows[t["index"]]].text
                if rows.get(t["index"]) in best
                else None,
            }
            for t in top
        ]
    return {
        "model": sae.model.slug,
        "sae": sae.slug,
        "index": index,
        "tokens": answer["tokens"],
        "token_ids": answer["token_ids"],
        "values": answer.get("values"),
        "max_activation": answer["max_activation"],
        "top_features": top,
    }
