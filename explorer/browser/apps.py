from django.apps import AppConfig


class BrowserConfig(AppConfig):
    name = "explorer.browser"
    default_auto_field = "django.db.models.BigAutoField"
