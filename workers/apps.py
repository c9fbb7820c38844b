from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """The worker side as a Django app, for its management commands (`add_sae`,
    `embed_explanations`): they run the engine in the command's own process. It has no models,
    and loading it imports nothing but this module (no torch: the web process loads every app)."""

    name = "workers"
    label = "workers"
    verbose_name = "Workers"
