from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "explorer.core"
    label = "core"
    verbose_name = "Explorer core"

    def ready(self) -> None:
        from explorer.core import checks  # noqa: F401  (registers the explorer.W0xx checks)
