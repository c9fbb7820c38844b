"""Models and their SAEs: GET /models, /models/{model}, /models/{model}/saes/{sae}."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest
from ninja import Router, Schema

from explorer.api.schemas import error_responses
from explorer.core.exceptions import NotFound
from explorer.saes import selectors as sae_selectors

router = Router(tags=["models and SAEs"])
ERRORS = error_responses(400, 401, 404, 422)


class SAEOut(Schema):
    model: str
    slug: str
    hook_name: str
    layer: int
    d_in: int
    d_sae: int
    architecture: str
    url: str


class SAEDetailOut(SAEOut):
    source: str
    preprocessing: dict
    provenance: dict


class ModelOut(Schema):
    slug: str
    source: str
    architecture: str
    d_model: int
    n_layers: int
    n_ctx: int
    n_saes: int
    url: str


class ModelDetailOut(ModelOut):
    saes: list[SAEOut]


def _sae_dict(sae, *, detail: bool = False) -> dict:
    out = {
        "model": sae.model.slug,
        "slug": sae.slug,
        "hook_name": sae.hook_name,
        "layer": sae.layer,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "architecture": sae.architecture,
        "url": f"/{sae.model.slug}/{sae.slug}/",
    }
    if detail:
        out.update(source=sae.source, preprocessing=sae.preprocessing, provenance=sae.provenance)
    return out


def _model_dict(model) -> dict:
    return {
        "slug": model.slug,
        "source": model.source,
        "architecture": model.architecture,
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "n_ctx": model.n_ctx,
        "n_saes": model.n_saes,
        "url": f"/{model.slug}/",
    }


@router.get("/models", response={200: list[ModelOut], **ERRORS}, summary="Language models")
def model_list(request: HttpRequest):
    return [
        _model_dict(m) for m in sae_selectors.language_model_list().annotate(n_saes=Count("saes"))
    ]


@router.get(
    "/models/{model}", response={200: ModelDetailOut, **ERRORS}, summary="A model and its SAEs"
)
def model_detail(request: HttpRequest, model: str):
    row = (
        sae_selectors.language_model_list()
        .annotate(n_saes=Count("saes"))
        .filter(slug=model)
        .first()
    )
    if row is None:
        raise NotFound(f"No model {model}.")
    return {
        **_model_dict(row),
        "saes": [_sae_dict(s) for s in sae_selectors.sae_list(model_slug=model)],
    }


@router.get(
    "/models/{model}/saes", response={200: list[SAEOut], **ERRORS}, summary="A model's SAEs"
)
def sae_list(request: HttpRequest, model: str):
    if not sae_selectors.language_model_list().filter(slug=model).exists():
        raise NotFound(f"No model {model}.")
    return [_sae_dict(s) for s in sae_selectors.sae_list(model_slug=model)]


@router.get("/models/{model}/saes/{sae}", response={200: SAEDetailOut, **ERRORS}, summary="One SAE")
def sae_detail(request: HttpRequest, model: str, sae: str):
    return _sae_dict(sae_selectors.sae_get(model_slug=model, slug=sae), detail=True)
