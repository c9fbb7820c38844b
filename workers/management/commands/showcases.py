"""`manage.py showcases [<model>/<sae>] [--now]`: recompute steering showcases.

By default it sends the work to a worker (`index` queue) and returns; `--now` runs it in this
process instead (needs the `worker` extra: torch and the model) and prints what was stored and
how long it took, which is why the command lives with the workers. Indexing an SAE recomputes
its showcases by itself.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from explorer.core.exceptions import ApplicationError
from explorer.saes import selectors as sae_selectors
from explorer.saes.indexing import sae_by_ref
from explorer.showcases import services
from explorer.showcases.models import SteeringShowcase
from workers.showcases import compute_showcases_for


class Command(BaseCommand):
    help = "Recompute the home page's steering showcases of an SAE (all SAEs when left out)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "sae", nargs="?", help="<model>/<sae>, its slug or id; all SAEs when left out"
        )
        parser.add_argument("--now", action="store_true", help="compute in this process and wait")

    def handle(self, *args, sae: str | None = None, now: bool = False, **options) -> None:
        try:
            saes = [sae_by_ref(sae)] if sae else list(sae_selectors.sae_list())
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if settings.SHOWCASE_CANDIDATES == 0:
            raise CommandError("SHOWCASE_CANDIDATES is 0: showcases are turned off")
        for s in saes:
            if not now:
                services.showcases_schedule(sae_id=s.pk)
                self.stdout.write(f"{s.model.slug}/{s.slug}: sent to the index queue")
                continue
            t0 = time.perf_counter()
            n = compute_showcases_for(s)
            self.stdout.write(
                f"{s.model.slug}/{s.slug}: {n} showcase(s) from "
                f"{settings.SHOWCASE_CANDIDATES} candidates in {time.perf_counter() - t0:.1f} s"
            )
            for sc in SteeringShowcase.objects.filter(sae=s):
                self.stdout.write(
                    f"  #{sc.feature_index} × {sc.strength:g}  score {sc.score:.2f} nats  "
                    f"fluency drop {sc.fluency_drop:.2f}  {sc.prompt!r} → {sc.text!r}"
                )
