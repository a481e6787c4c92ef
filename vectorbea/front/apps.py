from django.apps import AppConfig


class FrontConfig(AppConfig):
    name = "vectorbea.front"
