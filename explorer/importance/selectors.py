"""Reads for feature importance: one feature's result as a dict, an SAE's overview (density vs
importance, largest decoder cosine), and the inputs a worker needs. Importable without torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from explorer.importance.models import FeatureImportance
from explorer.saes.models import SAE, Example, Feature
from explorer.saes.selectors import stored_examples, vocab_get

METHODS = ("zero", "mean", "resample")


def importance_for(*, feature: Feature) -> FeatureImportance | None:
    return FeatureImportance.objects.filter(feature=feature).first()


def importance_dict(*, feature: Feature, row: FeatureImportance | None) -> dict:
    """The API/page shape. `status` is null when importance was never requested."""
    if row is None:
        return {
            "status": None,
            "progress": 0.0,
            "error": "",
            "loss_delta": None,
            "loss_clean": None,
            "n_contexts": 0,
            "n_predictions": 0,
            "up": [],
            "down": [],
            "computed_at": None,
            "density": feature.density,
        }
    vocab = vocab_get(model=feature.sae.model)

    def tokens(ids: list[int], values: list[float]) -> list[dict]:
        return [
            {"token_id": i, "token": vocab.token(i), "value": v}
            for i, v in zip(ids, values, strict=True)
        ]

    done = row.status == FeatureImportance.Status.DONE
    return {
        "status": row.status,
        "progress": row.progress,
        "error": row.error,
        "loss_delta": {"zero": row.loss_zero, "mean": row.loss_mean, "resample": row.loss_resample}
        if done
        else None,
        "loss_clean": row.loss_clean,
        "n_contexts": row.n_contexts,
        "n_predictions": row.n_predictions,
        "up": tokens(row.up_token_ids, row.up_values),
        "down": tokens(row.down_token_ids, row.down_values),
        "computed_at": row.computed_at,
        "density": feature.density,
    }


def importance_overview(*, sae: SAE) -> dict:
    """Data of the SAE page's overview, sized for large SAEs: the features that have an
    importance (index, density, zero-ablation loss delta: the scatter's points), and every live
    feature's largest decoder cosine to another feature, rounded to 3 decimals (the histogram).
    """
    live = Feature.objects.filter(sae=sae, dead=False)
    points = (
        live.filter(
            importance__status=FeatureImportance.Status.DONE, importance__loss_zero__isnull=False
        )
        .order_by("index")
        .values_list("index", "density", "importance__loss_zero")
    )
    index, density, importance = (
        (list(c) for c in zip(*points, strict=True)) if points else ([], [], [])
    )
    cosines = [
        round(c[0], 3) if c else None
        for c in live.order_by("index").values_list("neighbour_cosines", flat=True)
    ]
    return {
        "index": index,
        "density": density,
        "importance": importance,
        "max_cosine": cosines,
        "n_live": len(cosines),
        "n_dead": Feature.objects.filter(sae=sae, dead=True).count(),
    }


@dataclass(frozen=True)
class ImportanceInputs:
    """What the engine needs for one feature (plain values: no torch here). The worker picks
    the contexts from `top` and `quantile_bins` (workers/engine/importance.choose_contexts)."""

    feature_id: int
    index: int
    top: list[list[int]]  # top example windows, strongest first
    quantile_bins: list[list[list[int]]]  # quantile sample windows, lowest bin first
    mean: float  # over all tokens: density × mean non-zero activation
    density: float
    hist_edges: list[float]
    hist_counts: list[int]


def importance_inputs(*, feature_ids: Sequence[int]) -> list[ImportanceInputs]:
    """The stored example windows (token ids) and activation statistics of each feature, in
    feature order; features that no longer exist are left out."""
    feats = list(Feature.objects.filter(pk__in=feature_ids).order_by("sae_id", "index"))
    top: dict[int, list[list[int]]] = {}
    bins: dict[int, dict[int, list[list[int]]]] = {}
    by_sae: dict[int, dict[int, int]] = {}  # sae id -> feature index -> feature id
    for f in feats:
        by_sae.setdefault(f.sae_id, {})[f.index] = f.pk
    for sae_id, ids in by_sae.items():
        for e in stored_examples(sae_id=sae_id, feature_indices=list(ids)):
            fid = ids[e.feature_index]
            if e.kind == Example.Kind.TOP:
                top.setdefault(fid, []).append(list(e.token_ids))
            else:
                bins.setdefault(fid, {}).setdefault(e.quantile_index, []).append(list(e.token_ids))
    out = []
    for f in feats:
        by_bin = bins.get(f.pk, {})
        out.append(
            ImportanceInputs(
                feature_id=f.pk,
                index=f.index,
                top=top.get(f.pk, []),
                quantile_bins=[by_bin[q] for q in sorted(by_bin)],
                mean=f.density * f.mean_activation,
                density=f.density,
                hist_edges=list(f.hist_edges),
                hist_counts=list(f.hist_counts),
            )
        )
    return out
