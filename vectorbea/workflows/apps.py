from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "vectorbea.workflows"
