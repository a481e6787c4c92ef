"""Spending limits, rate limits, runaway guards and the kill switch of a workspace.

`WorkspaceLimits` holds the settings (one row per workspace, created on first use with the
defaults below); `LimitsChange` is their history. `SpendLedger` rows are what budget
reservations update atomically: one row per run, per workspace day and per workspace month,
each with what is spent (settled) and what is reserved by calls still in flight.
How many runs go on at once is counted from the run summaries (budgets.admission).
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from vectorbea.accounts.models import Workspace

MONEY = {"max_digits": 14, "decimal_places": 6}


class OverBudget(models.TextChoices):
    PAUSE = "pause", "Pause the run until someone raises the budget (needs attention)"
    FAIL = "fail", "Fail the run"


class WorkspaceLimits(models.Model):
    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    # Budgets in USD; None: no cap.
    run_cap_usd = models.DecimalField(null=True, blank=True, **MONEY)
    daily_cap_usd = models.DecimalField(null=True, blank=True, **MONEY)
    monthly_cap_usd = models.DecimalField(null=True, blank=True, **MONEY)
    # Percent of a cap at which a warning is recorded and the owners are emailed.
    soft_threshold_percent = models.PositiveSmallIntegerField(default=80)
    over_budget = models.CharField(
        max_length=8, choices=OverBudget.choices, default=OverBudget.PAUSE
    )
    # Runaway guards.
    max_steps_per_run = models.PositiveIntegerField(default=1000)
    max_attempts_per_step = models.PositiveIntegerField(default=10)
    # Rate limits per provider for this workspace; None: unlimited.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Concurrency; None: unlimited.
    max_concurrent_runs = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_runs_per_workflow = models.PositiveIntegerField(null=True, blank=True)
    # Kill switch: set while thrown.
    stopped_at = models.DateTimeField(null=True, blank=True)
    stopped_by = models.CharField(max_length=150, blank=True)
    stop_reason = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Limits of {self.workspace_id}"

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None


class WorkflowLimits(models.Model):
    """A workflow's overrides of its workspace's defaults; None: use the workspace's."""

    workflow = models.OneToOneField(
        "workflows.Workflow", on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    run_cap_usd = models.DecimalField(null=True, blank=True, **MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Limits of workflow {self.workflow_id}"


class LimitsChange(models.Model):
    """One saved change of a workspace's (or one of its workflows') limits."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    # {"field": [old, new], ...} as display strings.
    changes = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "-at"])]

    def __str__(self) -> str:
        return f"Limits of {self.workspace_id} changed at {self.at}"


class LedgerScope(models.TextChoices):
    RUN = "run", "Run"
    DAY = "day", "Day"
    MONTH = "month", "Month"


class SpendLedger(models.Model):
    """Spent and reserved USD for one scope: a run (key = run id), a workspace day
    (key = "2026-11-21", UTC) or month (key = "2026-11").

    A day or a month is spread over stripes, its amounts the sum over them: stripe 0 takes
    the calls admitted against a cap (one row, whose lock orders them) and holds the
    warnings given; a call without a cap holds on one of the other stripes (drawn at
    random), so the calls do not all wait on one row's lock. A run has stripe 0."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=8, choices=LedgerScope.choices)
    key = models.CharField(max_length=64)
    spent_usd = models.DecimalField(default=Decimal(0), **MONEY)
    reserved_usd = models.DecimalField(default=Decimal(0), **MONEY)
    # Highest soft-threshold warning already given for this scope (percent), so it is given
    # once; kept on stripe 0.
    warned_percent = models.PositiveSmallIntegerField(default=0)
    stripe = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "scope", "key", "stripe"], name="one_ledger_row_per_stripe"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.spent_usd} spent, {self.reserved_usd} reserved"


class Reservation(models.Model):
    """A call's worst-case cost held against its ledgers until it settles. A reservation
    whose worker died is released by the sweeper once `expires_at` passes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    run_id = models.UUIDField()
    step_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    amount_usd = models.DecimalField(**MONEY)
    day = models.CharField(max_length=10)
    month = models.CharField(max_length=7)
    # The stripes of the day's and the month's ledger rows that hold it (SpendLedger.stripe).
    day_stripe = models.PositiveSmallIntegerField(default=0)
    month_stripe = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"{self.amount_usd} for {self.run_id}/{self.step_id}#{self.attempt}"
