"""Reads for models and SAEs. Importable without torch."""

from __future__ import annotations

from django.db.models import QuerySet

from explorer.core.exceptions import NotFound
from explorer.saes.models import SAE, LanguageModel


def language_model_list() -> QuerySet[LanguageModel]:
    """All models, without their (large) vocab column."""
    return LanguageModel.objects.defer("vocab")


def sae_list(*, model_slug: str | None = None) -> QuerySet[SAE]:
    qs = SAE.objects.select_related("model").defer("model__vocab")
    if model_slug is not None:
        qs = qs.filter(model__slug=model_slug)
    return qs


def sae_get(*, model_slug: str, slug: str) -> SAE:
    """The SAE `slug` of model `model_slug`. Raises NotFound."""
    try:
        return sae_list(model_slug=model_slug).get(slug=slug)
    except SAE.DoesNotExist:
        raise NotFound(f"No SAE {model_slug}/{slug}.") from None


def sae_find(*, model_source: str, sae_source: str) -> SAE | None:
    """The SAE registered from these stored sources, if any."""
    return sae_list().filter(model__source=model_source, source=sae_source).first()
