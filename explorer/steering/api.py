"""JSON API of live steering: one generation over HTTP, steering vectors (CAA) and stored
steering results.

Mounted on /api/v1 by explorer/api/api.py. Reads are open; creating a vector needs an account
(ReadOpenWriteAccount, the API's default auth). `POST /steer` is open to everyone
(`OpenToAll`), as the websocket is: it computes rather than writes, and is rate-limited per
client. Its body is the websocket's `steer` message, checked by the same parser
(`protocol.parse_request`), so it is read from the request rather than declared as a schema;
the schema below only documents it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from ninja import Field, Router, Schema, Status

from explorer.accounts.permissions import OpenToAll
from explorer.api.schemas import (
    RATE_LIMITED,
    StrictSchema,
    error_responses,
    rate_limited_openapi,
)
from explorer.core.exceptions import ApplicationError
from explorer.saes.selectors import sae_get
from explorer.steering import protocol, runs, selectors, services
from explorer.steering.conf import limits
from explorer.steering.models import SteeringVector

router = Router(tags=["steering"])
ERRORS = error_responses(400, 401, 403, 404, 422)


class VectorIn(StrictSchema):
    model: str
    sae: str
    label: str
    # JSONL: one {"prompt", "positive", "negative"} object per line (the pasted or uploaded file)
    pairs: str


class AlignedFeature(Schema):
    index: int
    cosine: float
    weight: float
    label: str | None = Field(
        None, description="The feature's best explanation; null when it has none yet."
    )


class VectorOut(Schema):
    id: int
    model: str
    sae: str
    hook_name: str
    label: str
    method: str
    status: str  # pending | ready | failed
    error: str
    n_pairs: int
    norm: float
    features: list[AlignedFeature]  # the SAE features it aligns with, by decoder cosine
    residual_fraction: float | None
    created: datetime


def _vector_out(vec: SteeringVector, labels: dict[tuple[int, int], str] | None = None) -> dict:
    if labels is None:
        labels = selectors.aligned_labels(vectors=[vec])
    return {
        "id": vec.pk,
        "model": vec.sae.model.slug,
        "sae": vec.sae.slug,
        "hook_name": vec.hook_name,
        "label": vec.label,
        "method": vec.method,
        "status": vec.status,
        "error": vec.error,
        "n_pairs": len(vec.pairs),
        "norm": vec.norm,
        "features": [
            {**f, "label": labels.get((vec.sae_id, f["index"]))} for f in vec.features or []
        ],
        "residual_fraction": vec.residual_fraction,
        "created": vec.created,
    }


@router.post(
    "/steering/vectors",
    response={201: VectorOut, **ERRORS, **RATE_LIMITED},
    summary="Build a steering vector from contrast pairs (CAA)",
    description="Needs an account. The build runs on the model's live worker; each account may "
    "start STEER_VECTOR_RATE_LIMIT per STEER_VECTOR_RATE_WINDOW_S (429 with Retry-After past it).",
    openapi_extra=rate_limited_openapi("Too many steering vectors started in this window."),
)
def vector_create(request: HttpRequest, payload: VectorIn):
    sae = sae_get(model_slug=payload.model, slug=payload.sae)
    pairs = services.contrast_pairs_parse(text=payload.pairs)
    vec = services.steering_vector_create(
        sae=sae, label=payload.label, pairs=pairs, owner=request.auth, client=_client(request)
    )
    return Status(201, _vector_out(selectors.steering_vector_get(vector_id=vec.pk)))


@router.get(
    "/steering/vectors", response={200: list[VectorOut], **ERRORS}, summary="Steering vectors"
)
def vector_list(request: HttpRequest, model: str | None = None):
    vectors = list(selectors.steering_vector_list(model_slug=model)[:200])
    labels = selectors.aligned_labels(vectors=vectors)
    return [_vector_out(v, labels) for v in vectors]


@router.get(
    "/steering/vectors/{vector_id}",
    response={200: VectorOut, **ERRORS},
    summary="A steering vector and the SAE features it aligns with",
)
def vector_get(request: HttpRequest, vector_id: int):
    return _vector_out(selectors.steering_vector_get(vector_id=vector_id))


@router.get(
    "/steering/results/{result_id}",
    response={200: dict, **ERRORS},
    summary="A stored steering result (the permalink's data)",
)
def result_get(request: HttpRequest, result_id: str):
    return selectors.result_dict(selectors.steering_result_get(result_id=result_id))


# --------------------------------------------------------------------------- POST /steer


class SteerRowOut(Schema):
    text: str
    tokens: list[str]  # token strings (model text: escape it where it is shown)
    token_ids: list[int]
    probs: list[float] | None = None  # each token's probability at its step
    alternatives: list[list[tuple[str, float]]] | None = None  # the five likeliest, per token


class SteerResultRef(Schema):
    id: str
    url: str  # the permalink page (absolute)


class SteerOut(Schema):
    gen: int | str | None  # the request's `gen`, if it had one
    cached: bool  # answered from the cache of identical requests
    result: SteerResultRef
    default: SteerRowOut
    steered: SteerRowOut


class GenerationFailed(ApplicationError):
    status = 503
    code = "generation_failed"


def _field(description: str, **schema: Any) -> dict:
    return {**schema, "description": description}


_FEATURE_FIELDS = {
    "sae": _field("SAE slug", type="string"),
    "index": _field("feature index", type="integer", minimum=0),
    "strength": _field(
        "raw activation units (the page shows multiples of max activation); |strength| is at "
        "most STEER_STRENGTH_MAX",
        type="number",
    ),
    "mode": _field("how it steers", enum=list(protocol.MODES), default="add"),
    "vector": _field("a ready steering vector's id (GET /steering/vectors)", type="integer"),
}
_CHAT_TURN = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
}
_STEER_FIELDS = {
    "model": _field("model slug; may be left out when one model is registered", type="string"),
    "prompt": _field(
        "the text to continue (at most STEER_MAX_PROMPT_CHARS); or send `messages`",
        type="string",
    ),
    "messages": _field(
        "a chat instead of `prompt`, for a model with a chat template: [{role: system|user|"
        "assistant, content}], ending with the user's turn to answer; rendered by the model's "
        "own template with the generation prompt (at most STEER_MAX_CHAT_CHARS together)",
        type="array",
        items=_CHAT_TURN,
    ),
    "steered_messages": _field(
        "the steered row's own conversation when its earlier replies differ from the default "
        "row's: the same turns, only assistant contents may differ",
        type="array",
        items=_CHAT_TURN,
    ),
    "features": _field(
        "features {sae, index, strength, mode} and steering vectors {vector, strength}, all "
        "of one SAE (at most STEER_MAX_FEATURES)",
        type="array",
        items={
            "type": "object",
            "properties": {
                k: _FEATURE_FIELDS.get(k, _field("ignored (the page's display data)"))
                for k in sorted(protocol.FEATURE_FIELDS | protocol.VECTOR_FIELDS)
            },
        },
    ),
    "positions": _field(
        "where steering applies",
        enum=list(protocol.POSITIONS),
        default=protocol.DEFAULTS["positions"],
    ),
    "temperature": _field(
        "0 is greedy", type="number", minimum=0, maximum=5, default=protocol.DEFAULTS["temperature"]
    ),
    "top_p": _field(
        "nucleus sampling",
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        default=protocol.DEFAULTS["top_p"],
    ),
    "seed": _field(
        "the same seed and request give the same tokens",
        type="integer",
        minimum=0,
        default=protocol.DEFAULTS["seed"],
    ),
    "max_new_tokens": _field(
        "per row (at most STEER_MAX_NEW_TOKENS)",
        type="integer",
        minimum=1,
        default=protocol.DEFAULTS["max_new_tokens"],
    ),
    "gen": _field("optional; echoed in every frame", type=["integer", "string"]),
    "type": _field('optional; "steer" (the websocket message as it is)', const="steer"),
}
# Every field the parser takes is listed; one documented nowhere above still shows up.
STEER_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{k: v for k, v in _STEER_FIELDS.items() if k in protocol.STEER_FIELDS},
        **{
            k: _field("see explorer/steering/README.md")
            for k in sorted(protocol.STEER_FIELDS - set(_STEER_FIELDS))
        },
    },
}
STEER_EXAMPLE = {
    "model": "demo",
    "prompt": "The city council",
    "features": [{"sae": "demo", "index": 5, "strength": 8.0, "mode": "add"}],
    "temperature": 0.8,
    "seed": 3,
    "max_new_tokens": 8,
}
_ROW_EXAMPLE = {
    "text": " said that the",
    "tokens": [" said", " that", " the"],
    "token_ids": [531, 326, 262],
    "probs": [0.41, 0.62, 0.55],
    "alternatives": [
        [[" said", 0.41], [" voted", 0.2], [" has", 0.1], [" will", 0.05], [" of", 0.04]],
        [[" that", 0.62], [" it", 0.1], [" the", 0.08], [" on", 0.05], [" a", 0.04]],
        [[" the", 0.55], [" it", 0.2], [" a", 0.1], [" its", 0.05], [" they", 0.03]],
    ],
}
SSE_EXAMPLE = (
    'id: 1\nevent: delta\ndata: {"type":"delta","row":"default","seq":1,"text":" said",'
    '"gen":null}\n\n'
    'id: 2\nevent: delta\ndata: {"type":"delta","row":"steered","seq":2,"text":" was",'
    '"gen":null}\n\n'
    "...\n\n"
    'id: 7\nevent: done\ndata: {"type":"done","row":"steered","seq":7,"text":" was ...",'
    '"tokens":[...],"token_ids":[...],"probs":[...],"alternatives":[...],'
    '"result":"pXk3...","gen":null}\n\n'
)
STEER_DESCRIPTION = """\
One steered generation: the default and the steered continuation of a prompt.

The body is the websocket's `steer` message (explorer/steering/README.md) without `type`
and `gen` (both allowed): the same checks, limits and error messages. An identical request is
answered from the cache at once; otherwise it counts against the client's rate limit
(`STEER_RATE_LIMIT` per `STEER_RATE_WINDOW_S`, 429 past it) and runs on a live worker.

- `Accept: application/json` (the default): the finished result, once both rows are done.
- `Accept: text/event-stream`: the websocket's frames as Server-Sent Events, as they come
  (`event:` the frame's type, `id:` its `seq`, `data:` its JSON): `delta` frames with new text,
  then one `done` per row (full text, tokens, ids, probabilities, the permalink id); a failed
  run ends with `event: error`. Closing the connection cancels the generation.

Open to anonymous users, like the websocket (an API key or a session is optional; a wrong key
is refused). A run that fails once started (no worker on the model's queue, a worker that
died) gives 503 in JSON.
"""
STEER_OPENAPI = {
    "security": [{}],  # with OpenToAll's: a key or a session is optional
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": STEER_BODY,
                "examples": {
                    "feature": {"summary": "Add one feature", "value": STEER_EXAMPLE},
                    "chat": {
                        "summary": "A chat, steering the assistant's turns only",
                        "value": {
                            "model": "my-chat-model",
                            "messages": [
                                {"role": "user", "content": "Hi!"},
                                {"role": "assistant", "content": "Hello, how can I help?"},
                                {"role": "user", "content": "Tell me about your day."},
                            ],
                            "features": [{"sae": "res-8", "index": 12, "strength": 20.0}],
                            "positions": "assistant",
                            "max_new_tokens": 32,
                        },
                    },
                    "vector": {
                        "summary": "A steering vector, greedy",
                        "value": {
                            "model": "demo",
                            "prompt": "I think that",
                            "features": [{"vector": 1, "strength": 4.0}],
                            "temperature": 0,
                            "max_new_tokens": 16,
                        },
                    },
                },
            }
        },
    },
    "responses": {
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "gen": None,
                        "cached": False,
                        "result": {
                            "id": "pXk3q9cT0bL2",
                            "url": "http://localhost:8000/steer/pXk3q9cT0bL2/",
                        },
                        "default": _ROW_EXAMPLE,
                        "steered": {**_ROW_EXAMPLE, "text": " was ..."},
                    }
                },
                "text/event-stream": {
                    "schema": {"type": "string", "description": "Server-Sent Events"},
                    "example": SSE_EXAMPLE,
                },
            }
        },
        **rate_limited_openapi("More generations than STEER_RATE_LIMIT in this window.")[
            "responses"
        ],
    },
}


def _wants_events(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip() == "text/event-stream" for part in accept.split(","))


def _client(request: HttpRequest) -> str:
    return runs.client_id(user=request.auth, address=request.META.get("REMOTE_ADDR"))


def server_sent_event(frame: dict) -> bytes:
    """One frame as an SSE event (its JSON has no newline: model text is escaped in it)."""
    head = f"id: {frame['seq']}\n" if "seq" in frame else ""
    data = json.dumps(frame, separators=(",", ":"))
    return f"{head}event: {frame['type']}\ndata: {data}\n\n".encode()


async def _events(frames: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    async for frame in frames:
        yield server_sent_event(frame)


async def _finished(request: HttpRequest, cached: bool, frames: AsyncIterator[dict], gen: Any):
    done: dict[str, dict] = {}
    async for frame in frames:
        if frame["type"] == "error":
            raise GenerationFailed(frame["message"])
        if frame["type"] == "done":
            done[frame["row"]] = frame
    rows = {
        row: {k: f[k] for k in ("text", "tokens", "token_ids", "probs", "alternatives") if k in f}
        for row, f in done.items()
    }
    result = done["steered"]["result"]
    url = request.build_absolute_uri(reverse("steering:permalink", args=[result]))
    return {"gen": gen, "cached": cached, "result": {"id": result, "url": url}, **rows}


@router.post(
    "/steer",
    auth=OpenToAll(),
    response={200: SteerOut, **error_responses(400, 401, 503), **RATE_LIMITED},
    summary="Steer: one generation, as JSON or streamed as Server-Sent Events",
    description=STEER_DESCRIPTION,
    openapi_extra=STEER_OPENAPI,
)
async def steer(request: HttpRequest):
    content = protocol.loads(request.body)
    message, gen = protocol.parse_request(content, limits())
    cached, frames = await runs.steer_once(message, client=_client(request), gen=gen)
    if not _wants_events(request):
        return await _finished(request, cached, frames, gen)
    response = StreamingHttpResponse(_events(frames), content_type="text/event-stream")
    # Nothing between here and the client may hold events back: a proxy, or compression
    # (core/compression.py leaves text/event-stream alone).
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
