from django.apps import AppConfig


class ImportanceConfig(AppConfig):
    name = "explorer.importance"
    default_auto_field = "django.db.models.BigAutoField"
