from django.apps import AppConfig


class SaesConfig(AppConfig):
    name = "explorer.saes"
    label = "saes"
    verbose_name = "Models, SAEs and their features"
    default_auto_field = "django.db.models.BigAutoField"
