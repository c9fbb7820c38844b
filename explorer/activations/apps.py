from django.apps import AppConfig


class ActivationsConfig(AppConfig):
    name = "explorer.activations"
    label = "activations"
    verbose_name = "Activation tests on a live worker"
