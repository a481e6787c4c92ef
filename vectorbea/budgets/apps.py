from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "vectorbea.budgets"
    verbose_name = "Budgets, limits and the kill switch"

    def ready(self) -> None:
        from vectorbea.budgets.admission import admit_after_ended
        from vectorbea.eventlog import hooks

        hooks.register_after_commit(admit_after_ended)
