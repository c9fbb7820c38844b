"""SAE evaluations: request (checked), claim, progress, store, fail; what each metric means.

`evaluation_request` writes a queued SAEEvaluation and sends `workers.evals.evaluate_sae` on
the `index` queue after commit; the task claims the row with a conditional UPDATE, runs the
engine (workers/engine/evals.py) and stores the figures here. `manage.py eval_sae` runs the
same work in its own process. Torch-free: the web process imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.saes.models import SAE, IndexRun, SAEEvaluation
from workers.engine.corpus import CorpusError, parse_corpus_spec  # shared contract: no torch

DEFAULT_TOKENS = 100_000  # ~85k exist in the demo's held-out split; it uses them all
MAX_TOKENS = 1_000_000_000
DEMO_HELD_OUT = "demo:val"  # the documents the demo recipe held out from training


class EvaluationError(ApplicationError):
    code = "sae_evaluation_invalid"


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    help: str  # one line, shown beside the figure
    kind: str  # "fraction" (shown as %), "number", "count"
    better: str  # "higher", "lower" or "" (neither)


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo(
        "loss_recovered",
        "Loss recovered",
        "Share of the loss increase from zero-ablating the hook that splicing in the SAE's "
        "reconstruction avoids: 100% is perfect, 0% no better than ablation.",
        "fraction",
        "higher",
    ),
    MetricInfo(
        "explained_variance",
        "Explained variance",
        "1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖²: share of the activations' variance the "
        "reconstruction keeps.",
        "fraction",
        "higher",
    ),
    MetricInfo(
        "l0",
        "L0",
        "Mean number of features active on a token: lower is sparser.",
        "number",
        "",
    ),
    MetricInfo(
        "kl_div",
        "KL divergence",
        "Mean per token of KL(clean ‖ spliced) between the next-token distributions, in nats.",
        "number",
        "lower",
    ),
    MetricInfo(
        "ce_loss_clean",
        "CE loss, clean",
        "The model's next-token cross-entropy on the evaluation tokens, in nats.",
        "number",
        "",
    ),
    MetricInfo(
        "ce_loss_spliced",
        "CE loss, SAE spliced in",
        "Cross-entropy with the reconstruction replacing the activation at the hook.",
        "number",
        "lower",
    ),
    MetricInfo(
        "ce_loss_zero",
        "CE loss, hook zeroed",
        "Cross-entropy with the hook's activation set to zero (the reference for loss recovered).",
        "number",
        "",
    ),
    MetricInfo(
        "mse",
        "MSE",
        "Mean per token of the squared reconstruction error ‖x − x̂‖², summed over dimensions.",
        "number",
        "lower",
    ),
    MetricInfo(
        "dead_fraction",
        "Dead features",
        "Share of features that never fire on the evaluation tokens.",
        "fraction",
        "lower",
    ),
    MetricInfo(
        "dense_fraction",
        "Dense features",
        "Share of features firing on more than 10% of the evaluation tokens.",
        "fraction",
        "lower",
    ),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


def default_corpus(*, sae: SAE) -> tuple[str, int]:
    """(corpus spec, tokens to skip) of held-out text for `sae`: the demo's held-out split when
    the SAE was indexed on the demo corpus (or is on the demo model and not indexed yet), else
    the stream of its newest finished index run after the tokens that run used.

    Raises EvaluationError when neither applies (the caller must name a corpus).
    """
    run = IndexRun.objects.filter(sae=sae, status=IndexRun.Status.DONE).order_by("-created").first()
    if run is None:
        if sae.model.source == "demo":
            return DEMO_HELD_OUT, 0
        raise EvaluationError(
            f"SAE {sae.model.slug}/{sae.slug} has no finished index run to hold text back "
            "from; name a corpus (--corpus)",
            code="no_corpus",
        )
    if run.corpus in ("demo", DEMO_HELD_OUT):
        return DEMO_HELD_OUT, 0
    return run.corpus, run.tokens


def evaluation_create(
    *, sae: SAE, corpus: str | None = None, tokens: int = DEFAULT_TOKENS, skip_tokens: int = 0
) -> SAEEvaluation:
    """Check the request and write a queued SAEEvaluation (nothing runs yet). Without a corpus,
    `default_corpus` picks one (and its skip).

    Raises EvaluationError for a bad token count or a corpus spec that cannot be read.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
        raise EvaluationError(f"--tokens must be an integer in 1..{MAX_TOKENS:,}, got {tokens!r}")
    if isinstance(skip_tokens, bool) or not isinstance(skip_tokens, int) or skip_tokens < 0:
        raise EvaluationError(f"skip_tokens must be a non-negative integer, got {skip_tokens!r}")
    if corpus is None:
        corpus, skip_tokens = default_corpus(sae=sae)
    try:
        parse_corpus_spec(corpus)
    except CorpusError as e:
        raise EvaluationError(str(e), code="bad_corpus") from None
    return SAEEvaluation.objects.create(
        sae=sae, corpus=corpus.strip(), tokens=tokens, skip_tokens=skip_tokens
    )


def evaluation_dispatch(*, evaluation: SAEEvaluation) -> None:
    """Send the evaluation task once the row is committed."""
    transaction.on_commit(
        lambda: tasks.send(tasks.EVAL_SAE, queue=tasks.INDEX_QUEUE, args=(evaluation.pk,))
    )


def evaluation_request(*, sae: SAE, **options) -> SAEEvaluation:
    """`evaluation_create` (same options and errors), then queue it."""
    evaluation = evaluation_create(sae=sae, **options)
    evaluation_dispatch(evaluation=evaluation)
    return evaluation


def evaluation_claim(*, evaluation_id: int) -> SAEEvaluation | None:
    """Take a queued evaluation (queued → running); None when it is gone or already taken."""
    claimed = SAEEvaluation.objects.filter(
        pk=evaluation_id, status=SAEEvaluation.Status.QUEUED
    ).update(status=SAEEvaluation.Status.RUNNING)
    if not claimed:
        return None
    return (
        SAEEvaluation.objects.select_related("sae__model")
        .defer("sae__model__vocab")
        .get(pk=evaluation_id)
    )


def evaluation_progress(*, evaluation: SAEEvaluation, done: int, total: int) -> None:
    SAEEvaluation.objects.filter(pk=evaluation.pk).update(tokens_done=done, tokens_total=total)


def _json_number(v: float) -> float | None:
    """JSON has no NaN: an undefined figure is stored as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def evaluation_store(*, evaluation: SAEEvaluation, metrics: dict, seconds: float) -> None:
    """Record the engine's figures (SAEMetrics.to_dict()) and mark the evaluation done."""
    clean = {k: _json_number(v) for k, v in metrics.items()}
    SAEEvaluation.objects.filter(pk=evaluation.pk).update(
        status=SAEEvaluation.Status.DONE,
        metrics=clean,
        seconds=seconds,
        error="",
        finished=timezone.now(),
    )


def evaluation_failed(*, evaluation_id: int, error: str) -> None:
    SAEEvaluation.objects.filter(pk=evaluation_id).update(
        status=SAEEvaluation.Status.FAILED, error=error, finished=timezone.now()
    )
