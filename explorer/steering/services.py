"""Writes for live steering: storing finished generations, steering vectors, rate limits and
each client's generations in flight.

Nothing here imports torch (the web process imports this module); the live worker calls
`steering_results_store` and `steering_vector_finish` after its engine work.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.core.limits import Rate, RateLimited
from explorer.saes.models import SAE
from explorer.steering import selectors
from explorer.steering.conf import limits
from explorer.steering.models import SteeringResult, SteeringVector
from explorer.steering.streams import in_flight_key, result_id_for
from workers.engine import specs

log = logging.getLogger(__name__)


class VectorError(ApplicationError):
    code = "bad_vector"


@dataclass(frozen=True)
class FinishedGeneration:
    """A finished generation as the live worker hands it over: the engine request that made
    it (its key names the result), both rows' texts and token ids, and each row's token
    probabilities as `streams.row_alternatives` gives them."""

    request: specs.SteerRequest
    default_text: str
    default_tokens: list[int]
    steered_text: str
    steered_tokens: list[int]
    alternatives: dict[str, Any] = field(default_factory=dict)


def steering_result_store(*, generation: FinishedGeneration) -> SteeringResult:
    """Store one finished generation (see `steering_results_store`).

    Raises SAE.DoesNotExist when the request's model/SAE is gone.
    """
    [pk] = steering_results_store(generations=[generation])
    if pk is None:
        raise SAE.DoesNotExist(f"no SAE {generation.request.sae!r} on {generation.request.model!r}")
    return SteeringResult.objects.get(pk=pk)


def steering_results_store(*, generations: list[FinishedGeneration]) -> list[str | None]:
    """Store finished generations, with one SELECT and one INSERT for all of them (the live
    worker stores what finished meanwhile in one go), each under its request's key with the
    model and SAE registered with the request's sources. A key already stored keeps its row
    (two identical requests may finish at once), whose id is the same `result_id_for(key)`, so
    the permalink of a key never changes. Returns each one's permalink id; None where its
    model or SAE is gone."""
    if not generations:
        return []
    wanted = Q()
    for g in generations:
        wanted |= Q(model__source=g.request.model, source=g.request.sae)
    saes = {
        (row["model__source"], row["source"]): row
        for row in SAE.objects.filter(wanted).values(
            "id", "slug", "source", "model_id", "model__slug", "model__source"
        )
    }
    rows, ids = [], []
    for g in generations:
        sae = saes.get((g.request.model, g.request.sae))
        if sae is None:
            ids.append(None)
            continue
        key = g.request.key()
        ids.append(result_id_for(key))
        request = selectors.request_display(
            request=g.request, model_slug=sae["model__slug"], sae_slug=sae["slug"]
        )
        rows.append(
            SteeringResult(
                id=ids[-1],
                key=key,
                request=request,
                model_id=sae["model_id"],
                sae_id=sae["id"],
                engine_version=specs.STEERING_VERSION,
                default_text=g.default_text,
                default_tokens=list(g.default_tokens),
                steered_text=g.steered_text,
                steered_tokens=list(g.steered_tokens),
                alternatives=g.alternatives or {},
            )
        )
    SteeringResult.objects.bulk_create(rows, ignore_conflicts=True)
    return ids


def steer_rate() -> Rate:
    """The generations one client may start per window (STEER_RATE_LIMIT)."""
    lim = limits()
    return Rate(name="steer", limit=lim.rate_limit, window_s=lim.rate_window_s, what="generations")


async def rate_limit_hit(*, redis: Any, client: str) -> None:
    """Count one generation for `client` (a `runs.client_id`) in the current window.

    Raises RateLimited with the wait when the client is over `STEER_RATE_LIMIT`.
    """
    await steer_rate().ahit(redis=redis, client=client)


# Atomic on the Redis server, so web replicas racing for a client's last slot cannot both take
# it: drop entries past their deadline (runs whose release was lost), then add the run unless
# the client is at its cap. KEYS[1] the client's set; ARGV run id, now, deadline, cap, TTL (s).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


async def in_flight_acquire(*, redis: Any, client: str, run: str) -> None:
    """Count `run` among the client's generations in flight (release it with
    `in_flight_release` when it ends, however it ends; an entry older than
    STEER_IN_FLIGHT_TTL_S stops counting on its own).

    Raises RateLimited when the client already has STEER_MAX_IN_FLIGHT in flight. Refusing
    rather than superseding the client's oldest run: the others may be another tab's, another
    script's, or a stranger's behind the same address, and cancelling them would surprise
    people who did nothing wrong; a refusal is seen at once by the one who asked.
    """
    lim = limits()
    now = time.time()
    taken = await redis.eval(
        _ACQUIRE,
        1,
        in_flight_key(client),
        run,
        now,
        now + lim.in_flight_ttl_s,
        lim.max_in_flight,
        lim.in_flight_ttl_s,
    )
    if not taken:
        raise RateLimited(
            f"too many generations at once: at most {lim.max_in_flight} in flight per client; "
            "wait for one to finish or cancel it",
            retry_after=1,  # a generation in flight usually ends within seconds
        )


async def in_flight_release(*, redis: Any, client: str, run: str) -> None:
    """Stop counting `run` in flight (nothing happens if it was not counted)."""
    await redis.zrem(in_flight_key(client), run)


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
            raise VectorError(
                f'line {n} must be an object with exactly "prompt", "positive" and "negative"'
            )
        if not all(isinstance(v, str) and v for v in item.values()):
            raise VectorError(f"line {n}: prompt, positive and negative must be non-empty strings")
        if item["positive"] == item["negative"]:
            raise VectorError(f"line {n}: positive and negative are identical")
        pairs.append(
            {"prompt": item["prompt"], "positive": item["positive"], "negative": item["negative"]}
        )
    return pairs


def steering_vector_create(
    *,
    sae: SAE,
    label: str,
    pairs: list[dict[str, str]],
    owner: AbstractBaseUser | AnonymousUser | None = None,
    client: str | None = None,
) -> SteeringVector:
    """Create a pending CAA vector and enqueue its build on the model's live queue (after
    commit), counted against `client`'s STEER_VECTOR_RATE_LIMIT per STEER_VECTOR_RATE_WINDOW_S
    (None: no limit). Raises VectorError for no pairs, too many, or an empty label, and
    RateLimited (429) past the rate, creating nothing."""
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
            raise VectorError(
                f"a contrast pair is longer than {2 * lim.max_prompt_chars} characters"
            )
    if client is not None:
        Rate(
            name="steer-vector",
            limit=settings.STEER_VECTOR_RATE_LIMIT,
            window_s=settings.STEER_VECTOR_RATE_WINDOW_S,
            what="steering vectors",
        ).hit(client=client)
    with transaction.atomic():
        vec = SteeringVector.objects.create(
            sae=sae,
            hook_name=sae.hook_name,
            label=label,
            pairs=pairs,
            owner=owner if owner is not None and owner.is_authenticated else None,
        )
        transaction.on_commit(
            lambda: tasks.send(
                tasks.BUILD_VECTOR, args=(vec.pk,), queue=tasks.live_queue(sae.model.slug)
            )
        )
    return vec


def steering_vector_finish(
    *, vector_id: int, vector: list[float], features: list[dict], residual_fraction: float
) -> None:
    """Mark a vector ready with its values and the SAE features it aligns with."""
    norm = sum(v * v for v in vector) ** 0.5
    SteeringVector.objects.filter(pk=vector_id).update(
        vector=vector,
        norm=norm,
        features=features,
        residual_fraction=residual_fraction,
        status=SteeringVector.Status.READY,
        error="",
    )


def steering_vector_fail(*, vector_id: int, error: str) -> None:
    SteeringVector.objects.filter(pk=vector_id).update(
        status=SteeringVector.Status.FAILED, error=error[:2000]
    )
