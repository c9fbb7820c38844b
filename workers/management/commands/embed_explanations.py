"""`manage.py embed_explanations [<model>/<sae>] [--now]`: embeddings for semantic search.

By default it sends the sweep to a worker (explain queue) and returns; `--now` runs it in this
process instead (needs the `worker` extra: torch and the embedding model), which is why the
command lives with the workers. Either way only explanations without an embedding, or whose
text changed since, are embedded.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from explorer.core.exceptions import ApplicationError
from explorer.saes.indexing import sae_by_ref
from explorer.search import services
from workers.embeddings import embed_missing


class Command(BaseCommand):
    help = "Embed explanations that have no embedding (semantic search), on a worker or --now."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "sae", nargs="?", help="<model>/<sae>, its slug or id; all SAEs when left out"
        )
        parser.add_argument("--now", action="store_true", help="embed in this process and wait")

    def handle(self, *args, sae: str | None = None, now: bool = False, **options) -> None:
        try:
            sae_id = sae_by_ref(sae).pk if sae else None
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if now:
            done, _ = embed_missing(sae_id=sae_id)
            self.stdout.write(f"embedded {done} explanation(s)")
            return
        services.embeddings_schedule(sae_id=sae_id)
        self.stdout.write("sent to the explain queue; a worker embeds them")
