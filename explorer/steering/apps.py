from django.apps import AppConfig


class SteeringConfig(AppConfig):
    name = "explorer.steering"
    default_auto_field = "django.db.models.BigAutoField"
