from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "vectorbea.triggers"
    verbose_name = "Webhooks and schedules"
