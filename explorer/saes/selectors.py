"""Reads for models and SAEs. Importable without torch."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from explorer.core.exceptions import NotFound
from explorer.saes.models import SAE, Feature, IndexRun, IndexShard, LanguageModel


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


def sae_by_id(*, sae_id: int) -> SAE | None:
    """SAE `sae_id` with its model (vocab left out); None when it is gone."""
    return sae_list().filter(pk=sae_id).first()


def features_by_sae(*, feature_ids: Sequence[int]) -> list[tuple[SAE, list[int]]]:
    """The SAEs (with their models, vocab left out) of the features `feature_ids`, each with the
    ids of its features among them; features that are gone are left out."""
    groups: dict[int, tuple[SAE, list[int]]] = {}
    rows = (Feature.objects.filter(pk__in=list(feature_ids)).select_related("sae__model")
            .defer("sae__model__vocab").order_by("sae_id", "index"))
    for f in rows:
        groups.setdefault(f.sae_id, (f.sae, []))[1].append(f.pk)
    return list(groups.values())


# -- index runs ----------------------------------------------------------------------------

FINISHED = (IndexRun.Status.DONE, IndexRun.Status.FAILED, IndexRun.Status.CANCELLED)


def index_run_unfinished(*, run_id: int) -> IndexRun | None:
    """Run `run_id` with its SAE and model, unless it is gone or finished (done, failed or
    cancelled): what a merge step may still store."""
    return (IndexRun.objects.select_related("sae__model").defer("sae__model__vocab")
            .filter(pk=run_id).exclude(status__in=FINISHED).first())


def index_shard_list(*, run: IndexRun) -> list[IndexShard]:
    """The run's shards by index, with their stored results."""
    return list(IndexShard.objects.filter(run=run).order_by("index"))
