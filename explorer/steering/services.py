"""Writes for live steering: storing finished generations, steering vectors, rate limits.

The engine is never imported here (the web process imports this module); the live worker
calls `steering_result_store` and `steering_vector_finish` after its engine work.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction

from explorer.core.exceptions import ApplicationError
from explorer.saes.models import SAE
from explorer.steering.conf import limits
from explorer.steering.models import SteeringResult, SteeringVector
from explorer.steering.streams import STEERING_VERSION, rate_key, result_id_for

log = logging.getLogger(__name__)


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"


class VectorError(ApplicationError):
    code = "bad_vector"


def steering_result_store(*, key: str, request: dict[str, Any], default_text: str,
                          default_tokens: list[int], steered_text: str,
                          steered_tokens: list[int]) -> SteeringResult:
    """Store a finished generation under its key (its id is `result_id_for(key)`), with the
    model and SAE named by the
    request's `model` and `sae` slugs; an existing row with that key wins (two identical
    requests may finish at the same time), so the permalink of a key never changes.

    Raises SAE.DoesNotExist when the request's model/SAE is gone.
    """
    existing = SteeringResult.objects.filter(key=key).first()
    if existing is not None:
        return existing
    sae = SAE.objects.select_related("model").only("id", "model__id").get(
        model__slug=request["model"], slug=request["sae"])
    try:
        with transaction.atomic():
            return SteeringResult.objects.create(
                id=result_id_for(key), key=key, request=request, model_id=sae.model_id, sae_id=sae.pk,
                engine_version=STEERING_VERSION, default_text=default_text,
                default_tokens=list(default_tokens), steered_text=steered_text,
                steered_tokens=list(steered_tokens))
    except IntegrityError:
        return SteeringResult.objects.get(key=key)


async def rate_limit_hit(*, redis: Any, client: str) -> None:
    """Count one generation for `client` in the current fixed window (Redis INCR + EXPIRE).

    Raises RateLimited with the wait when the client is over `STEER_RATE_LIMIT`.
    """
    lim = limits()
    now = time.time()
    window = int(now // lim.rate_window_s)
    key = rate_key(client, window)
    async with redis.pipeline(transaction=True) as pipe:
        count, _ = await pipe.incr(key).expire(key, lim.rate_window_s + 1).execute()
    if count > lim.rate_limit:
        wait = (window + 1) * lim.rate_window_s - now
        raise RateLimited(f"rate limit: at most {lim.rate_limit} generations per "
                          f"{lim.rate_window_s} s; try again in {wait:.0f} s")


# --------------------------------------------------------------------------- steering vectors


def contrast_pairs_parse(*, text: str) -> list[dict[str, str]]:
    """Parse JSONL contrast pairs: one {"prompt", "positive", "negative"} object per line
    (blank lines skipped). Raises VectorError naming the line."""
    pairs = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VectorError(f"line {n} is not JSON: {exc.msg}") from None
        if not isinstance(item, dict) or set(item) != {"prompt", "positive", "negative"}:
            raise VectorError(f'line {n} must be an object with exactly "prompt", "positive" '
                              'and "negative"')
        if not all(isinstance(v, str) and v for v in item.values()):
            raise VectorError(f"line {n}: prompt, positive and negative must be non-empty strings")
        if item["positive"] == item["negative"]:
            raise VectorError(f"line {n}: positive and negative are identical")
        pairs.append({"prompt": item["prompt"], "positive": item["positive"],
                      "negative": item["negative"]})
    return pairs


def steering_vector_create(*, sae: SAE, label: str, pairs: list[dict[str, str]],
                           owner: AbstractBaseUser | AnonymousUser | None = None) -> SteeringVector:
    """Create a pending CAA vector and enqueue its build on the model's live queue (after
    commit). Raises VectorError for no pairs, too many, or an empty label."""
    label = (label or "").strip()
    if not label:
        raise VectorError("give the steering vector a name")
    if len(label) > 200:
        raise VectorError("the name is longer than 200 characters")
    if not pairs:
        raise VectorError("no contrast pairs given")
    lim = limits()
    if len(pairs) > lim.max_vector_pairs:
        raise VectorError(f"too many contrast pairs: {len(pairs)} (at most {lim.max_vector_pairs})")
    for pair in pairs:
        if sum(len(v) for v in pair.values()) > 2 * lim.max_prompt_chars:
            raise VectorError(f"a contrast pair is longer than {2 * lim.max_prompt_chars} characters")
    from workers.celery import live_queue
    from workers.live import build_vector as build_vector_task

    with transaction.atomic():
        vec = SteeringVector.objects.create(
            sae=sae, hook_name=sae.hook_name, label=label, pairs=pairs,
            owner=owner if owner is not None and owner.is_authenticated else None)
        transaction.on_commit(lambda: build_vector_task.apply_async(
            args=[vec.pk], queue=live_queue(sae.model.slug)))
    return vec


def steering_vector_finish(*, vector_id: int, vector: list[float], features: list[dict],
                           residual_fraction: float) -> None:
    """Mark a vector ready with its values and the SAE features it aligns with."""
    norm = sum(v * v for v in vector) ** 0.5
    SteeringVector.objects.filter(pk=vector_id).update(
        vector=vector, norm=norm, features=features, residual_fraction=residual_fraction,
        status=SteeringVector.Status.READY, error="")


def steering_vector_fail(*, vector_id: int, error: str) -> None:
    SteeringVector.objects.filter(pk=vector_id).update(status=SteeringVector.Status.FAILED,
                                                       error=error[:2000])
