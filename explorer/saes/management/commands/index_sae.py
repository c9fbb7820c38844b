"""`python manage.py index_sae <model>/<sae> --corpus <spec> --tokens N [...]`.

Queues an IndexRun on the `index` queue (its shards run on every worker consuming it) and
follows it with a progress bar until it ends. `--resume <run>` requeues the shards of an
interrupted run that are not done; `--no-wait` only queues.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from explorer.core.exceptions import ApplicationError
from explorer.saes import indexing as svc
from explorer.saes.models import IndexRun

BAR_WIDTH = 30
POLL_S = 0.2


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Command(BaseCommand):
    help = (
        "Index an SAE over a corpus: per-feature statistics, top and quantile examples, "
        "logit effects, neighbours and the feature map."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("sae", nargs="?", help="<model>/<sae> slugs, a unique SAE slug or id")
        parser.add_argument(
            "--corpus",
            help="'demo', .txt/.jsonl files or globs (comma separated), or 'hf:<dataset>[:split]'",
        )
        parser.add_argument("--tokens", type=int, help="tokens to read from the corpus")
        for key, what in (
            ("context", "tokens per example window, BOS included"),
            ("top", "top examples per feature"),
            ("quantiles", "quantile bins per feature"),
            ("per_quantile", "examples per quantile bin"),
        ):
            default = svc.DEFAULTS[key]
            parser.add_argument(
                "--" + key.replace("_", "-"),
                type=int,
                default=default,
                help=f"{what} (default {default})",
            )
        parser.add_argument(
            "--shards",
            type=int,
            default=1,
            help="corpus shards, run in parallel by the index workers",
        )
        parser.add_argument(
            "--include-bos",
            action="store_true",
            help="count BOS tokens in the statistics (excluded by default)",
        )
        parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
        parser.add_argument(
            "--resume",
            type=int,
            metavar="RUN",
            help="requeue the unfinished shards of index run RUN",
        )
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return")

    def handle(self, *args, **o) -> None:
        try:
            run = self._resume(o["resume"]) if o["resume"] else self._create(o)
        except ApplicationError as e:
            raise CommandError(e.message) from None
        self.stdout.write(
            f"Index run {run.pk}: {run.sae} over {run.corpus!r}, "
            f"{run.tokens:,} tokens, {run.shards} shard(s)."
        )
        if o["no_wait"]:
            return
        self._follow(run.pk)

    def _create(self, o: dict) -> IndexRun:
        if not o["sae"]:
            raise CommandError("name the SAE to index (<model>/<sae>), or --resume RUN")
        if not o["corpus"]:
            raise CommandError("--corpus is required: 'demo', files/globs or hf:<dataset>")
        if o["tokens"] is None:
            raise CommandError("--tokens is required")
        sae = svc.sae_by_ref(o["sae"])
        with transaction.atomic():
            run = svc.index_run_create(
                sae=sae,
                corpus=o["corpus"],
                tokens=o["tokens"],
                shards=o["shards"],
                context=o["context"],
                top=o["top"],
                quantiles=o["quantiles"],
                per_quantile=o["per_quantile"],
                include_bos=o["include_bos"],
                batch_size=o["batch_size"],
            )
            svc.index_run_dispatch(run=run)
        return run

    def _resume(self, run_id: int) -> IndexRun:
        run = IndexRun.objects.select_related("sae__model").filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"no index run {run_id}")
        queued = svc.index_run_resume(run=run)
        self.stdout.write(
            f"Resuming run {run.pk}: shard(s) {queued or 'none'} queued, finished shards kept."
        )
        return run

    def _follow(self, run_id: int) -> None:
        """Draw a progress bar (tokens/s, ETA) until the run ends; fail on a failed run."""
        tty = sys.stdout.isatty()
        t0, last_line = time.monotonic(), ""
        while True:
            run = IndexRun.objects.get(pk=run_id)
            total = run.tokens_total or run.tokens
            done = min(run.tokens_done, total)
            elapsed = time.monotonic() - t0
            rate = done / elapsed if elapsed > 0 else 0.0
            frac = done / total if total else 0.0
            eta = _duration((total - done) / rate) if rate > 0 and done < total else "-"
            bar = "#" * int(frac * BAR_WIDTH) + "." * (BAR_WIDTH - int(frac * BAR_WIDTH))
            phase = run.options.get("phase", run.status)
            line = (
                f"[{bar}] {frac:6.1%} {done:,}/{total:,} tokens · {rate:,.0f} tok/s · "
                f"ETA {eta} · {phase}"
            )
            if tty:
                self.stdout.write("\r" + line.ljust(len(last_line)), ending="")
            elif line.split(" · ")[-1] != last_line.split(" · ")[-1]:
                self.stdout.write(line)  # not a terminal: one line per phase
            last_line = line
            if run.status in (
                IndexRun.Status.DONE,
                IndexRun.Status.FAILED,
                IndexRun.Status.CANCELLED,
            ):
                break
            time.sleep(POLL_S)
        if tty:
            self.stdout.write("")
        if run.status == IndexRun.Status.FAILED:
            raise CommandError(
                f"index run {run.pk} failed: {run.error} "
                f"(fix it, then `manage.py index_sae --resume {run.pk}`)"
            )
        if run.status == IndexRun.Status.CANCELLED:
            raise CommandError(f"index run {run.pk} was cancelled")
        opts = run.options
        self.stdout.write(
            self.style.SUCCESS(
                f"Indexed {run.sae}: {opts.get('features', 0):,} features, "
                f"{opts.get('examples', 0):,} examples in {_duration(time.monotonic() - t0)}."
            )
        )
