"""Models and their SAEs: GET /models, /models/{model}, /models/{model}/saes/{sae}[/metrics]."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count
from django.http import HttpRequest
from ninja import Field, Router, Schema

from explorer.api.schemas import error_responses
from explorer.core.exceptions import NotFound
from explorer.saes import selectors as sae_selectors
from explorer.saes.evaluations import METRICS

router = Router(tags=["models and SAEs"])
ERRORS = error_responses(400, 401, 404, 422)


_HELP = {m.key: m.help for m in METRICS}


class MetricsOut(Schema):
    """An SAE's quality on held-out text, as SAELens's evals define each figure. A figure that
    is undefined (loss recovered when zeroing the hook costs nothing) is null."""

    tokens: int = Field(description="Tokens counted (BOS and special tokens excluded).")
    l0: float | None = Field(description=_HELP["l0"], examples=[20.0])
    explained_variance: float | None = Field(
        description=_HELP["explained_variance"], examples=[0.92]
    )
    mse: float | None = Field(description=_HELP["mse"])
    ce_loss_clean: float | None = Field(description=_HELP["ce_loss_clean"])
    ce_loss_spliced: float | None = Field(description=_HELP["ce_loss_spliced"])
    ce_loss_zero: float | None = Field(description=_HELP["ce_loss_zero"])
    loss_recovered: float | None = Field(description=_HELP["loss_recovered"], examples=[0.975])
    kl_div: float | None = Field(description=_HELP["kl_div"])
    dead_fraction: float | None = Field(description=_HELP["dead_fraction"])
    dense_fraction: float | None = Field(description=_HELP["dense_fraction"])


class SAEOut(Schema):
    model: str
    slug: str
    hook_name: str
    layer: int
    d_in: int
    d_sae: int
    architecture: str
    url: str
    metrics: MetricsOut | None = Field(
        description="The newest finished evaluation's metrics; null until one has run."
    )


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


class EvaluationOut(Schema):
    status: str | None = Field(
        description="The newest evaluation's state: queued, running, done or failed; null "
        "when the SAE was never evaluated.",
        examples=["done"],
    )
    metrics: MetricsOut | None = Field(
        description="The newest finished evaluation's metrics (kept while a new one runs)."
    )
    corpus: str | None = Field(description="Corpus spec the metrics were computed on.")
    skip_tokens: int | None = Field(description="Leading corpus tokens skipped (the index's).")
    evaluated: datetime | None = Field(description="When the shown metrics were computed.")
    tokens_done: int = Field(description="Progress of a running evaluation.")
    tokens_total: int
    error: str = Field(description="Why the newest evaluation failed, when it did.")


def _sae_dict(sae, *, detail: bool = False, evaluation=None) -> dict:
    out = {
        "model": sae.model.slug,
        "slug": sae.slug,
        "hook_name": sae.hook_name,
        "layer": sae.layer,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "architecture": sae.architecture,
        "url": f"/{sae.model.slug}/{sae.slug}/",
        "metrics": evaluation.metrics if evaluation is not None else None,
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
    return {**_model_dict(row), "saes": _sae_dicts(model)}


@router.get(
    "/models/{model}/saes", response={200: list[SAEOut], **ERRORS}, summary="A model's SAEs"
)
def sae_list(request: HttpRequest, model: str):
    if not sae_selectors.language_model_list().filter(slug=model).exists():
        raise NotFound(f"No model {model}.")
    return _sae_dicts(model)


def _sae_dicts(model: str) -> list[dict]:
    saes = list(sae_selectors.sae_list(model_slug=model))
    done = sae_selectors.evaluations_done_by_sae(sae_ids=[s.pk for s in saes])
    return [_sae_dict(s, evaluation=done.get(s.pk)) for s in saes]


@router.get("/models/{model}/saes/{sae}", response={200: SAEDetailOut, **ERRORS}, summary="One SAE")
def sae_detail(request: HttpRequest, model: str, sae: str):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    done = sae_selectors.evaluation_latest(sae=row, done=True)
    return _sae_dict(row, detail=True, evaluation=done)


@router.get(
    "/models/{model}/saes/{sae}/metrics",
    response={200: EvaluationOut, **ERRORS},
    summary="An SAE's quality metrics",
    description="L0, explained variance, MSE, cross-entropy clean / with the SAE spliced in / "
    "with the hook zeroed, loss recovered, KL divergence and the dead and dense feature "
    "fractions, computed on held-out text (`manage.py eval_sae`, or automatically after "
    "indexing), with the state of the newest evaluation.",
)
def sae_metrics(request: HttpRequest, model: str, sae: str):
    row = sae_selectors.sae_get(model_slug=model, slug=sae)
    latest = sae_selectors.evaluation_latest(sae=row)
    done = sae_selectors.evaluation_latest(sae=row, done=True)
    return {
        "status": latest.status if latest else None,
        "metrics": done.metrics if done else None,
        "corpus": done.corpus if done else None,
        "skip_tokens": done.skip_tokens if done else None,
        "evaluated": done.finished if done else None,
        "tokens_done": latest.tokens_done if latest else 0,
        "tokens_total": (latest.tokens_total or latest.tokens) if latest else 0,
        "error": latest.error if latest else "",
    }
