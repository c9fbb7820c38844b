"""`python manage.py eval_sae <model> <sae> [--tokens N] [--corpus SPEC] [--background]`.

Computes the SAE's quality metrics on held-out text in this process (it loads the model, so it
lives with the workers), with a progress bar, stores them and prints them. `--background`
queues the evaluation on the `index` queue instead.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from explorer.core.exceptions import ApplicationError
from explorer.saes import evaluations as svc
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAEEvaluation
from workers.evals import run_evaluation

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Evaluate an SAE on held-out text: L0, explained variance, loss recovered, KL, ..."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", help="the model's slug")
        parser.add_argument("sae", help="the SAE's slug")
        parser.add_argument(
            "--tokens",
            type=int,
            default=svc.DEFAULT_TOKENS,
            help=f"held-out tokens to read (default {svc.DEFAULT_TOKENS:,}; fewer when the "
            "corpus runs out)",
        )
        parser.add_argument(
            "--corpus",
            help="corpus spec (default: the demo's held-out split for demo-indexed SAEs, else "
            "the indexed corpus after the tokens its index used)",
        )
        parser.add_argument(
            "--background", action="store_true", help="queue it for a worker and return"
        )

    def handle(self, *args, **options) -> None:
        try:
            sae = sae_selectors.sae_get(model_slug=options["model"], slug=options["sae"])
            evaluation = svc.evaluation_create(
                sae=sae, corpus=options["corpus"], tokens=options["tokens"]
            )
        except ApplicationError as e:
            raise CommandError(e.message) from None
        if options["background"]:
            svc.evaluation_dispatch(evaluation=evaluation)
            self.stdout.write(f"Queued evaluation {evaluation.pk} of {sae.model.slug}/{sae.slug}.")
            return
        evaluation = svc.evaluation_claim(evaluation_id=evaluation.pk)
        self.stdout.write(
            f"Evaluating {sae.model.slug}/{sae.slug} on {evaluation.corpus} "
            f"({evaluation.tokens:,} tokens"
            + (f" after the first {evaluation.skip_tokens:,}" if evaluation.skip_tokens else "")
            + ")"
        )
        try:
            metrics, seconds = run_evaluation(evaluation, self._progress_bar())
        except Exception as e:  # noqa: BLE001 — recorded on the row, then reported
            svc.evaluation_failed(evaluation_id=evaluation.pk, error=str(e) or type(e).__name__)
            raise CommandError(f"evaluation failed: {e}") from None
        svc.evaluation_store(evaluation=evaluation, metrics=metrics.to_dict(), seconds=seconds)
        self._print(SAEEvaluation.objects.get(pk=evaluation.pk))

    def _progress_bar(self):
        tty = sys.stdout.isatty()
        t0 = time.monotonic()

        def progress(done: int, total: int) -> None:
            frac = done / total if total else 1.0
            rate = done / max(time.monotonic() - t0, 1e-9)
            filled = int(frac * BAR_WIDTH)
            line = (
                f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {frac:6.1%} "
                f"{done:,}/{total:,} tokens · {rate:,.0f} tok/s"
            )
            if tty:
                self.stdout.write("\r" + line, ending="" if done < total else "\n")
            elif done == total:
                self.stdout.write(line)

        return progress

    def _print(self, evaluation: SAEEvaluation) -> None:
        m = evaluation.metrics
        width = max(len(info.label) for info in svc.METRICS)
        for info in svc.METRICS:
            v = m.get(info.key)
            if v is None:
                shown = "n/a"
            elif info.kind == "fraction":
                shown = f"{v:.2%}"
            else:
                shown = f"{v:.4g}"
            self.stdout.write(f"  {info.label.ljust(width)}  {shown}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Evaluated {evaluation.sae.model.slug}/{evaluation.sae.slug} on "
                f"{m['tokens']:,} tokens in {evaluation.seconds:.1f} s."
            )
        )
