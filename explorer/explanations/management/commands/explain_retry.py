"""`python manage.py explain_retry [<model>/<sae>]`: queue the retryable failed explain and
score jobs again (endpoint down, timed out, over quota, malformed reply), and jobs a dead
worker left running."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from explorer.core.exceptions import ApplicationError
from explorer.explanations import services
from explorer.saes import indexing


class Command(BaseCommand):
    help = "Queue failed LLM explain/score jobs again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("sae", nargs="?", help="<model>/<sae> slugs (default: every SAE)")

    def handle(self, *args, **o) -> None:
        try:
            sae = indexing.sae_by_ref(o["sae"]) if o["sae"] else None
        except ApplicationError as e:
            raise CommandError(e.message) from None
        ids = services.explain_jobs_retry(sae=sae)
        self.stdout.write(f"queued {len(ids)} job(s) again")
