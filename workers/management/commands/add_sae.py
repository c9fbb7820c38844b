"""`python manage.py add_sae --model <path|hub id|demo> --sae <path|release:sae_id|demo>`.

Loads the model and SAE in this process (workers/registration.py), so it lives with the workers.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from explorer.core.exceptions import ApplicationError
from workers.registration import sae_register_from_specs


class Command(BaseCommand):
    help = "Register a language model and an SAE on it, after checking that the SAE fits the model."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--model", required=True, help="'demo', a local HF directory or a hub id"
        )
        parser.add_argument(
            "--sae", required=True, help="'demo', a local SAELens folder or 'release:sae_id'"
        )
        parser.add_argument("--slug", help="the SAE's slug (default: from the SAE spec)")
        parser.add_argument(
            "--model-slug", help="the model's slug when it is new (default: from the model spec)"
        )

    def handle(self, *args, **options) -> None:
        try:
            reg = sae_register_from_specs(
                model_spec=options["model"],
                sae_spec=options["sae"],
                slug=options["slug"],
                model_slug=options["model_slug"],
            )
        except ApplicationError as e:
            raise CommandError(e.message) from None
        sae = reg.sae
        if not reg.created:
            self.stdout.write(
                f"SAE {sae.model.slug}/{sae.slug} is already registered; nothing changed."
            )
            return
        if reg.model_created:
            self.stdout.write(
                f"Registered model {sae.model.slug} ({sae.model.source}, "
                f"{len(sae.model.vocab)} tokens)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered SAE {sae.model.slug}/{sae.slug}: {sae.hook_name}, d_in={sae.d_in}, "
                f"d_sae={sae.d_sae}, {sae.architecture}."
            )
        )
