"""Activation tests on a live worker: a feature's per-token activations on a text ("test with
your text"), or the features that fire most on it, in one SAE (POST /api/v1/activations/test,
the search box's `text:` queries) or in every SAE of a model at once (`text:` over a model).

The model runs on a worker of the model's `live.<model>` queue (tasks TEXT_ACTIVATIONS and
MODEL_TEXT_ACTIVATIONS, sent by name); this process waits for the answer, at most
EXPLORER_LIVE_TIMEOUT_S, and caches it per SAE: the same text on the same SAE always gives the
same values. A test the cache cannot answer counts against its client's limits (given the
client): LIVE_TEST_RATE_LIMIT per LIVE_TEST_RATE_WINDOW_S and LIVE_TEST_CONCURRENCY waiting at
once, since each holds a web thread and a turn of the worker that also serves steering.
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
from explorer.core.limits import Concurrency, Rate
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


def _run_on_worker(*, model_slug: str, task: str, kwargs: dict, client: str | None) -> dict:
    """The answer of `task` on the model's live queue, counted against `client`'s limits (None:
    no limit). Raises RateLimited, LiveWorkerUnavailable, LiveWorkerTimeout, or
    ApplicationError (the worker failed, or refused the input)."""
    if client is None:
        return _answer(model_slug=model_slug, task=task, kwargs=kwargs)
    slot = Concurrency(
        name="live-test", limit=settings.LIVE_TEST_CONCURRENCY, what="text tests"
    ).acquire(client=client)
    try:
        Rate(
            name="live-test",
            limit=settings.LIVE_TEST_RATE_LIMIT,
            window_s=settings.LIVE_TEST_RATE_WINDOW_S,
            what="text tests",
        ).hit(client=client)
        return _answer(model_slug=model_slug, task=task, kwargs=kwargs)
    finally:
        slot.release()


def _answer(*, model_slug: str, task: str, kwargs: dict) -> dict:
    """`_run_on_worker` without limits."""
    queue = tasks.live_queue(model_slug)
    if not _queue_has_consumer(queue):
        raise LiveWorkerUnavailable(
            f"No live worker serves model {model_slug} right now (queue {queue}); try again later."
        )
    result = tasks.send(task, queue=queue, expires=live_timeout_s(), kwargs=kwargs)
    try:
        answer = result.get(timeout=live_timeout_s(), propagate=False)
    except CeleryTimeout:
        result.revoke()
        cache.delete(f"live-consumer:{queue}")
        raise LiveWorkerTimeout(
            f"The live worker for {model_slug} did not answer within "
            f"{live_timeout_s():g} s; try again later."
        ) from None
    finally:
        result.forget()
    if isinstance(answer, TaskRevokedError):  # expired in the queue behind other work
        raise LiveWorkerTimeout(f"The live worker for {model_slug} is busy; try again later.")
    if isinstance(answer, Exception) or not isinstance(answer, dict):
        log.error("activation test (%s on %s) failed: %r", task, model_slug, answer)
        raise ApplicationError(
            "The live worker failed on this text.", code="live_failed", status=502
        )
    if "error" in answer:
        raise ApplicationError(answer["error"], code=answer.get("code", "invalid_text"))
    return answer


def activation_test(
    *,
    model_slug: str,
    sae_slug: str,
    text: str,
    index: int | None = None,
    top_k: int = 20,
    client: str | None = None,
) -> dict:
    """Per-token activations of feature `index` on `text`, or (index None) the `top_k` features
    that fire most on it, computed by a live worker and cached by (SAE, text, index).

    Returns {tokens, token_ids, values (index given, else null), max_activation,
    top_features: [{index, max_value, position, explanation}] (index None, else [])}; the
    BOS token is left out. A computed (not cached) answer counts against `client`'s limits.
    Raises NotFound (model/SAE), ApplicationError (empty or over-long text, index out of
    range), RateLimited (429), LiveWorkerUnavailable (503), LiveWorkerTimeout (504).
    """
    sae = sae_selectors.sae_get(model_slug=model_slug, slug=sae_slug)
    _check_text(text)
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
        answer = _run_on_worker(
            model_slug=sae.model.slug,
            task=tasks.TEXT_ACTIVATIONS,
            kwargs={"sae_id": sae.pk, "text": text, "index": index, "top_k": top_k},
            client=client,
        )
        cache.set(key, answer, RESULT_CACHE_SECONDS)
    return _result(sae, index, answer)


def text_search_max_saes() -> int:
    """Most SAEs one model_activation_test encodes (settings.EXPLORER_TEXT_SEARCH_MAX_SAES)."""
    return settings.EXPLORER_TEXT_SEARCH_MAX_SAES


def model_activation_test(
    *, saes: list[SAE], text: str, top_k: int = 20, client: str | None = None
) -> list[dict]:
    """activation_test's top features (index None) of `text` in each of `saes`, all SAEs of
    one model, in their order: one task on the model's live worker runs the text through the
    model once and encodes it with every SAE not already cached.

    Results share activation_test's cache, so they equal a test of each SAE alone. Raises
    ApplicationError (no SAEs, SAEs of several models, more than EXPLORER_TEXT_SEARCH_MAX_SAES
    of them: code too_many_saes; an empty or over-long text), RateLimited (429, as
    activation_test: one task counts once), LiveWorkerUnavailable (503), LiveWorkerTimeout
    (504).
    """
    if not saes or len({sae.model_id for sae in saes}) != 1:
        raise ApplicationError("Give the SAEs of one model.", code="invalid_scope")
    model_slug = saes[0].model.slug
    if len(saes) > text_search_max_saes():
        raise ApplicationError(
            f"Model {model_slug} has {len(saes)} SAEs; a text is run through at most "
            f"{text_search_max_saes()} at once: choose one SAE (sae=<slug>).",
            code="too_many_saes",
        )
    _check_text(text)
    top_k = max(1, min(top_k, MAX_TOP_K))
    keys = {sae.pk: _cache_key(sae, text, None, top_k) for sae in saes}
    found = cache.get_many(list(keys.values()))
    answers = {pk: found[key] for pk, key in keys.items() if key in found}
    missing = [sae.pk for sae in saes if sae.pk not in answers]
    if missing:
        reply = _run_on_worker(
            model_slug=model_slug,
            task=tasks.MODEL_TEXT_ACTIVATIONS,
            kwargs={"sae_ids": missing, "text": text, "top_k": top_k},
            client=client,
        )
        fresh = {r.pop("sae_id"): r for r in reply["results"]}
        cache.set_many({keys[pk]: answer for pk, answer in fresh.items()}, RESULT_CACHE_SECONDS)
        answers.update(fresh)
    return [_result(sae, None, answers[sae.pk]) for sae in saes]


def _check_text(text: str) -> None:
    if not text.strip():
        raise ApplicationError("Type a text to test.", code="empty_text")
    if len(text) > test_text_max_chars():
        raise ApplicationError(
            f"The text is {len(text)} characters long; the limit is {test_text_max_chars()}.",
            code="text_too_long",
        )


def _result(sae: SAE, index: int | None, answer: dict) -> dict:
    """A worker's answer for `sae` as activation_test returns it: top features labelled with
    their best explanation now (explanations change; the cached answer does not)."""
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
