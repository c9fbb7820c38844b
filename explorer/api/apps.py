from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "explorer.api"
    label = "api"
    verbose_name = "JSON API"
