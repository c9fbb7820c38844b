from django.apps import AppConfig


class ShowcasesConfig(AppConfig):
    name = "explorer.showcases"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Steering showcases"
