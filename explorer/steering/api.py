"""JSON API of live steering: steering vectors (CAA) and stored steering results.

Mounted on /api/v1 by explorer/api/api.py. Reads are open; creating a vector needs an account
(ReadOpenWriteAccount, the API's default auth).
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from explorer.api.schemas import StrictSchema, error_responses
from explorer.saes.selectors import sae_get
from explorer.steering import selectors, services
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
    response={201: VectorOut, **ERRORS},
    summary="Build a steering vector from contrast pairs (CAA)",
)
def vector_create(request: HttpRequest, payload: VectorIn):
    sae = sae_get(model_slug=payload.model, slug=payload.sae)
    pairs = services.contrast_pairs_parse(text=payload.pairs)
    vec = services.steering_vector_create(
        sae=sae, label=payload.label, pairs=pairs, owner=request.auth
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
