"""Builders for database rows, with overrides (STYLE.md tests §4).

`build_indexed_sae()` makes a small, fully "indexed" SAE without running a model: features
with statistics, histograms, logits, neighbours, map coordinates and examples, deterministic
from `seed`. Pages, API and search tests use it; tests of indexing itself run the real
pipeline on the demo model instead. `build_saved_sae()` writes a random-weight SAELens folder
(a second SAE for the demo model, registered with `add_sae` or sae_register_from_specs).
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from explorer.saes.models import SAE, Feature, IndexRun, LanguageModel, SAEEvaluation, SAEMap

WORDS = [
    "the",
    " cat",
    " sat",
    " on",
    " mat",
    ".",
    "\n",
    " dog",
    " ran",
    " <script>",
    " and",
    " United",
    " States",
    " of",
    " America",
    " river",
    " bank",
    " money",
    "<|endoftext|>",
    " é",
    " 東京",
    "  ",
    "\t",
    " a",
]


def make_language_model(**overrides: Any) -> LanguageModel:
    fields: dict[str, Any] = {
        "slug": "tiny",
        "source": "tiny-source",
        "architecture": "gpt2",
        "d_model": 16,
        "n_layers": 2,
        "n_ctx": 128,
        "vocab": list(WORDS),
    }
    fields.update(overrides)
    return LanguageModel.objects.create(**fields)


def make_sae(model: LanguageModel | None = None, **overrides: Any) -> SAE:
    model = model or make_language_model()
    fields: dict[str, Any] = {
        "model": model,
        "slug": "res-1",
        "source": "demo-like",
        "hook_name": "blocks.1.hook_resid_post",
        "layer": 1,
        "d_in": model.d_model,
        "d_sae": 32,
        "architecture": "topk",
        "preprocessing": {"prepend_bos": True},
        "provenance": {},
    }
    fields.update(overrides)
    return SAE.objects.create(**fields)


@dataclass
class IndexedSAE:
    sae: SAE
    features: list[Feature] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


def build_indexed_sae(
    *,
    sae: SAE | None = None,
    d_sae: int = 32,
    examples_per_feature: int = 3,
    context: int = 12,
    dead_every: int = 10,
    seed: int = 0,
) -> IndexedSAE:
    """An SAE whose features look indexed. Every `dead_every`-th feature (index 0 included)
    is dead: no examples, zero stats. Live feature i peaks on vocab token `i % len(vocab)`."""
    rng = random.Random(seed)
    sae = sae or make_sae(d_sae=d_sae)
    vocab_n = len(sae.model.vocab)
    out = IndexedSAE(sae=sae)
    feats = []
    for i in range(sae.d_sae):
        dead = dead_every > 0 and i % dead_every == 0
        mx = 0.0 if dead else round(1 + 9 * rng.random(), 3)
        feats.append(
            Feature(
                sae=sae,
                index=i,
                dead=dead,
                max_activation=mx,
                density=0.0 if dead else 10 ** rng.uniform(-5, -1),
                mean_activation=mx / 3,
                hist_edges=[] if dead else [0.0, mx / 4, mx / 2, 3 * mx / 4, mx],
                hist_counts=[] if dead else [50, 20, 8, 2],
                quantile_bounds=[] if dead else [mx * k / 5 for k in range(6)],
                top_logit_ids=[(i + k) % vocab_n for k in range(3)],
                top_logit_values=[1.5, 1.0, 0.5],
                bottom_logit_ids=[(i + 7 + k) % vocab_n for k in range(3)],
                bottom_logit_values=[-1.5, -1.0, -0.5],
                neighbour_indices=[(i + 1) % sae.d_sae, (i + 2) % sae.d_sae],
                neighbour_cosines=[0.5, 0.25],
            )
        )
        if dead:
            out.dead.append(i)
    out.features = Feature.objects.bulk_create(feats)
    SAEMap.objects.create(
        sae=sae,
        xs=[math.cos(i) for i in range(sae.d_sae)],
        ys=[math.sin(i) for i in range(sae.d_sae)],
        computed=timezone.now(),
    )
    examples = []
    for f in out.features:
        if f.dead:
            continue
        peak = f.index % vocab_n
        for r in range(examples_per_feature):
            ids = [rng.randrange(vocab_n) for _ in range(context)]
            pos = rng.randrange(context)
            ids[pos] = peak
            top = f.max_activation * (1 - r / (examples_per_feature + 1))
            vals = [0.0] * context
            vals[pos] = top
            if pos > 0:
                vals[pos - 1] = top / 3
            examples.append(
                ExampleRow(
                    feature_index=f.index,
                    kind="top",
                    token_ids=ids,
                    values=vals,
                    max_value=top,
                    max_position=pos,
                    document=rng.randrange(1000),
                    offset=rng.randrange(500),
                )
            )
        examples.append(
            ExampleRow(
                feature_index=f.index,
                kind="quantile",
                quantile_index=0,
                token_ids=[peak] * 4,
                values=[0.1, 0.0, 0.0, 0.0],
                max_value=0.1,
                max_position=0,
                document=0,
                offset=0,
            )
        )
    store_examples(sae, examples)
    return out


@dataclass
class ExampleRow:
    """One example as a test writes it: its window's tokens and its dense values."""

    feature_index: int
    kind: str  # "top" or "quantile"
    token_ids: list[int]
    values: list[float]
    max_value: float
    max_position: int
    document: int = 0
    offset: int = 0
    quantile_index: int | None = None


def store_examples(sae: SAE, rows: list[ExampleRow]) -> IndexRun:
    """Replace `sae`'s examples by `rows` the way an index run does (a done run of its own,
    windows deduplicated, values sparse, the partition swapped in)."""
    import numpy as np

    from explorer.saes.example_copy import ExampleArrays, WindowArrays, sparsify
    from explorer.saes.indexing import examples_stage, examples_swap

    run = IndexRun.objects.create(sae=sae, corpus="test", tokens=0, status=IndexRun.Status.DONE)
    numbers: dict[tuple, int] = {}
    for r in rows:
        numbers.setdefault((r.document, r.offset, tuple(r.token_ids)), len(numbers))
    width = max((len(k[2]) for k in numbers), default=1)
    tokens = np.zeros((len(numbers), width), np.int64)
    for (_, _, ids), i in numbers.items():
        tokens[i, : len(ids)] = ids
    windows = WindowArrays(
        number=np.arange(len(numbers)),
        token_ids=tokens,
        lengths=np.array([len(k[2]) for k in numbers], np.int64),
        document=np.array([k[0] for k in numbers], np.int64),
        offset=np.array([k[1] for k in numbers], np.int64),
    )
    sparse = [sparsify(np.asarray(r.values, np.float32)) for r in rows]
    n = len(rows)
    chunk = ExampleArrays(
        feature_index=np.array([r.feature_index for r in rows], np.int64),
        kind=np.array([r.kind != "top" for r in rows], np.int64),
        quantile_index=np.array([r.quantile_index or 0 for r in rows], np.int64),
        quantile_low=np.zeros(n),
        quantile_high=np.zeros(n),
        window=np.array(
            [numbers[(r.document, r.offset, tuple(r.token_ids))] for r in rows], np.int64
        ),
        max_value=np.array([r.max_value for r in rows], np.float64),
        max_position=np.array([r.max_position for r in rows], np.int64),
        nz_offsets=np.concatenate([[0], np.cumsum([len(p) for p, _ in sparse])]).astype(np.int64),
        nz_positions=np.concatenate([p for p, _ in sparse] or [np.zeros(0, np.int64)]),
        nz_values=np.concatenate([v for _, v in sparse] or [np.zeros(0, np.float16)]),
    )
    examples_stage(run=run, windows=windows, examples=[chunk])
    examples_swap(run=run)
    return run


def example_rows(sae: SAE) -> list[ExampleRow]:
    """`sae`'s stored examples as ExampleRows (to change some and store them again)."""
    from explorer.saes.selectors import stored_examples

    indices = list(Feature.objects.filter(sae=sae).values_list("index", flat=True))
    return [
        ExampleRow(
            feature_index=e.feature_index,
            kind=e.kind,
            token_ids=list(e.token_ids),
            values=list(e.values),
            max_value=e.max_value,
            max_position=e.max_position,
            document=e.document,
            offset=e.offset,
            quantile_index=e.quantile_index,
        )
        for e in stored_examples(sae_id=sae.pk, feature_indices=indices)
    ]


def build_saved_sae(
    path, *, d_in: int, hook_name: str = "blocks.1.hook_resid_post", seed: int | None = None
) -> str:
    """A random-weight TopK SAE (d_sae 32, k 4) saved as a SAELens folder at `path`; `seed`
    makes its weights reproducible."""
    import torch
    from sae_lens import SAE as LensSAE
    from sae_lens import TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    cfg = TopKSAEConfig(d_in=d_in, d_sae=32, k=4, dtype="float32", device="cpu")
    cfg.metadata = SAEMetadata(hook_name=hook_name, prepend_bos=True)
    with torch.random.fork_rng(), warnings.catch_warnings():
        if seed is not None:
            torch.manual_seed(seed)
        warnings.filterwarnings("ignore", message=".*model_from_pretrained_kwargs.*")
        sae = LensSAE.from_dict(cfg.to_dict())
    path.mkdir(parents=True, exist_ok=True)
    sae.save_model(path)
    return str(path)


DEMO_LIKE_METRICS = {
    "tokens": 84661,
    "l0": 20.0,
    "explained_variance": 0.9219,
    "mse": 21.46,
    "ce_loss_clean": 4.9006,
    "ce_loss_spliced": 5.0394,
    "ce_loss_zero": 10.5177,
    "loss_recovered": 0.9753,
    "kl_div": 0.1334,
    "dead_fraction": 0.0,
    "dense_fraction": 0.0163,
}


def make_evaluation(sae: SAE, status: str = "done", **metrics: Any) -> SAEEvaluation:
    """An evaluation row of `sae`; a done one carries DEMO_LIKE_METRICS with `metrics` over them."""
    done = status == SAEEvaluation.Status.DONE
    return SAEEvaluation.objects.create(
        sae=sae,
        corpus="demo:val",
        tokens=100_000,
        status=status,
        metrics={**DEMO_LIKE_METRICS, **metrics} if done else {},
        seconds=12.5 if done else None,
    )
