from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "vectorbea.approvals"
