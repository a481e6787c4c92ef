from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "vectorbea.api"
    label = "api"
    verbose_name = "API"
