from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "vectorbea.budgets"
    verbose_name = "Budgets, limits and the kill switch"
