"""Reads for steering showcases: the candidate features of an SAE (the compute budget) and the
showcases the home page links to. Importable without torch."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import ExpressionWrapper, F, FloatField

from explorer.explanations import selectors as explanation_selectors
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE, Feature
from explorer.showcases.models import SteeringShowcase


@dataclass(frozen=True)
class ShowcaseCandidate:
    index: int
    max_activation: float
    top_logit_ids: list[int]


def showcase_candidates(*, sae: SAE, limit: int) -> list[ShowcaseCandidate]:
    """Up to `limit` live features of `sae` with the largest density × top direct logit effect:
    features that fire often and push some tokens hard, so steering them has a visible target.
    Features without a positive logit effect or activation are left out."""
    weight = ExpressionWrapper(F("density") * F("top_logit_values__0"), output_field=FloatField())
    rows = (
        Feature.objects.filter(sae=sae, dead=False, max_activation__gt=0, top_logit_values__0__gt=0)
        .annotate(weight=weight)
        .order_by(F("weight").desc(nulls_last=True), "index")
        .only("index", "max_activation", "top_logit_ids")[:limit]
    )
    return [ShowcaseCandidate(r.index, r.max_activation, list(r.top_logit_ids)) for r in rows]


def feature_labels(*, sae: SAE, indices: list[int]) -> dict[int, str]:
    """{feature index: its best explanation's text} for the features that have one."""
    ids = dict(Feature.objects.filter(sae=sae, index__in=indices).values_list("pk", "index"))
    best = explanation_selectors.best_explanations(feature_ids=list(ids))
    return {ids[pk]: e.text for pk, e in best.items()}


def steer_url(showcase: SteeringShowcase, *, model_slug: str, sae_slug: str) -> str:
    """The live steering page for a showcase: it generates at once, with the sampling the
    showcase was scored with (so, seeded alike, it shows the same steered text)."""
    s = showcase.settings
    params = [
        ("prompt", showcase.prompt),
        ("f", f"{sae_slug}:{showcase.feature_index}:{showcase.strength:g}"),
    ]
    params += [(key, s[name]) for key, name in URL_SETTINGS if name in s]
    return f"/{model_slug}/steer/?{urlencode(params)}"


# Steering page query keys (explorer/steering/selectors.initial_from_query) of the settings.
URL_SETTINGS = (("t", "temperature"), ("p", "top_p"), ("seed", "seed"), ("n", "max_new_tokens"))


@dataclass(frozen=True)
class ShowcaseCard:
    showcase: SteeringShowcase
    model: str
    sae: str
    steer_url: str
    feature_url: str


def home_showcases(*, limit: int) -> list[ShowcaseCard]:
    """Up to `limit` showcases for the home page: each SAE's best first, then its next ones."""
    rows = (
        SteeringShowcase.objects.select_related("sae__model")
        .defer("sae__model__vocab")
        .order_by("rank", "-score", "id")[:limit]
    )
    return [
        ShowcaseCard(
            showcase=r,
            model=r.sae.model.slug,
            sae=r.sae.slug,
            steer_url=steer_url(r, model_slug=r.sae.model.slug, sae_slug=r.sae.slug),
            feature_url=sae_selectors.feature_url(
                model_slug=r.sae.model.slug, sae_slug=r.sae.slug, index=r.feature_index
            ),
        )
        for r in rows
    ]
