"""`python manage.py explain_sae <model>/<sae> [--features 1,2,3] [--limit N] [--score-only]`.

Queues LLM explain jobs (each then scored by the LLM judge) on the `explain` queue, in
batches of EXPLAINER_BATCH_SIZE. `--score-only` instead queues score jobs for the unscored
explanations (LLM judge with an endpoint, offline proxy without one). `--wait` follows the
jobs until they end and prints the failures with their reasons.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q, Sum

from explorer.core.exceptions import ApplicationError
from explorer.explanations import services
from explorer.explanations.models import ExplainJob
from explorer.saes import indexing

POLL_S = 0.5


def parse_indices(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CommandError(
            f"--features takes comma-separated feature indices, not {value!r}"
        ) from None


class Command(BaseCommand):
    help = (
        "Explain an SAE's features with the configured LLM endpoint "
        "(Celery jobs on the explain queue)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("sae", help="<model>/<sae> slugs")
        parser.add_argument(
            "--features", type=parse_indices, help="comma-separated feature indices (default: all)"
        )
        parser.add_argument("--limit", type=int, help="at most this many features")
        parser.add_argument(
            "--base-url", help="OpenAI-compatible endpoint (default EXPLAINER_BASE_URL)"
        )
        parser.add_argument("--model", help="model id at the endpoint (default EXPLAINER_MODEL)")
        parser.add_argument(
            "--score-only",
            action="store_true",
            help="score the unscored explanations instead (offline proxy without an endpoint)",
        )
        parser.add_argument("--wait", action="store_true", help="follow the jobs until they end")

    def handle(self, *args, **o) -> None:
        if o["limit"] is not None and o["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            sae = indexing.sae_by_ref(o["sae"])
            make = services.score_jobs_create if o["score_only"] else services.explain_jobs_create
            jobs = make(
                sae=sae,
                indices=o["features"],
                limit=o["limit"],
                base_url=o["base_url"],
                model=o["model"],
            )
        except ApplicationError as e:
            raise CommandError(e.message) from None
        ids = [j.pk for j in jobs]
        self.stdout.write(
            f"queued {len(ids)} job(s) for {sae.model.slug}/{sae.slug} on the explain queue"
        )
        if o["wait"] and ids:
            self._follow(ids)

    def _follow(self, ids: list[int]) -> None:
        qs = ExplainJob.objects.filter(pk__in=ids)
        while qs.filter(status__in=(ExplainJob.Status.QUEUED, ExplainJob.Status.RUNNING)).exists():
            time.sleep(POLL_S)
        totals = qs.aggregate(
            done=Count("pk", filter=Q(status=ExplainJob.Status.DONE)),
            failed=Count("pk", filter=Q(status=ExplainJob.Status.FAILED)),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        self.stdout.write(
            f"done {totals['done']}, failed {totals['failed']}; tokens used: "
            f"{totals['prompt'] or 0} prompt + {totals['completion'] or 0} completion"
        )
        for job in qs.filter(status=ExplainJob.Status.FAILED).select_related("feature"):
            self.stdout.write(f"  feature {job.feature.index}: {job.reason}")
