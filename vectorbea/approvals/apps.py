from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "vectorbea.approvals"

    def ready(self) -> None:
        from vectorbea.approvals.projection import GATES, notify_opened
        from vectorbea.eventlog import hooks

        hooks.register_projection(GATES)
        hooks.register_after_commit(notify_opened)
