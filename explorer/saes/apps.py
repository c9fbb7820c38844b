from django.apps import AppConfig


class SaesConfig(AppConfig):
    name = "explorer.saes"
    label = "saes"
    verbose_name = "Models, SAEs and their features"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from explorer.saes.models import SAE

        post_delete.connect(_drop_examples, sender=SAE, dispatch_uid="saes-drop-examples")


def _drop_examples(sender, instance, **kwargs) -> None:
    """An SAE's examples partition has no foreign key to cascade along: however the SAE is
    deleted (admin, shell, a model's deletion), its partition goes in the same transaction."""
    from explorer.saes.indexing import examples_drop

    examples_drop(sae_id=instance.pk)
