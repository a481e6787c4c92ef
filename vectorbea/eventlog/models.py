"""The event store's tables. `Event` is the single source of truth for every run.

Everything else here is derived from it, written in the same transaction as the events
that justify it: the `RunSummary` projection, `Checkpoint`s of folded state, and the
scheduling rows (`StepLease`, `RunSummary.wake_at`) the scheduler scans.
"""

import uuid
from typing import Any

from django.conf import settings
from django.db import models

# The other apps' models by name: the event log imports no app of the project.
Workspace = "accounts.Workspace"
Workflow = "workflows.Workflow"
WorkflowVersion = "workflows.WorkflowVersion"


class Run(models.Model):
    """A run's immutable identity. Its state lives in its events."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_run_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def current_version_id(self) -> uuid.UUID:
        """The version the run is on now: the one it started on, unless a person moved it
        to another when retrying a step (the summary follows the log)."""
        summary = getattr(self, "summary", None)
        return (summary and summary.version_id) or self.version_id

    @classmethod
    def current_version_of(cls, run_id: uuid.UUID) -> uuid.UUID:
        """`current_version_id` of a run known only by its id (one query)."""
        return cls.objects.select_related("summary").get(pk=run_id).current_version_id

    @property
    def current_version(self) -> Any:
        """The WorkflowVersion of `current_version_id`."""
        summary = getattr(self, "summary", None)
        return (summary and summary.version) or self.version


def run_link(related_name: str) -> models.ForeignKey:
    """The run of a row every step writes (events, leases, checkpoints), without a
    foreign-key constraint: checking one locks the run's row (FOR KEY SHARE, a heap write
    and a WAL record) in every step's transaction. The append is their only writer and
    checks the run itself (store.append); runs are never deleted."""
    return models.ForeignKey(
        Run,
        on_delete=models.DO_NOTHING,
        related_name=related_name,
        db_index=False,
        db_constraint=False,
    )


class Event(models.Model):
    """Append-only: the database rejects UPDATE and DELETE (migration 0002)."""

    pk = models.CompositePrimaryKey("run", "seq")
    run = run_link("events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=64)
    schema_version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"


class Checkpoint(models.Model):
    """The folded state of a run as of `seq`. Resume = latest checkpoint + later events."""

    pk = models.CompositePrimaryKey("run", "seq")
    run = run_link("checkpoints")
    seq = models.PositiveIntegerField()
    state = models.JSONField()

    def __str__(self) -> str:
        return f"{self.run_id}@{self.seq}"


class RunSummary(models.Model):
    """Projection of the log for lists and pages. Only RunSummaryProjection writes it."""

    run = models.OneToOneField(
        Run, primary_key=True, on_delete=models.DO_NOTHING, related_name="summary"
    )
    # Every step rewrites this row, so each index costs every step: no index of its own on
    # workspace (each index below starts with it) nor on version (nothing looks runs up
    # by version here, and versions are never deleted).
    # No constraints either: workspace and workflow are copies of the run's (which has
    # them), written by the statement that writes the run's row; the version is the run's
    # or one a person moved it to, which the command checked. Checking them again would
    # lock those three rows (FOR KEY SHARE) in every run's first transaction, where
    # concurrent starts of one workflow meet.
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    workflow = models.ForeignKey(
        Workflow, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    # The version the run is on now (a person may move it on when retrying a step).
    version = models.ForeignKey(
        WorkflowVersion,
        null=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    status = models.CharField(max_length=24)
    last_seq = models.PositiveIntegerField()
    steps = models.JSONField(default=dict)
    current_steps = models.JSONField(default=list)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField()
    # When a worker must look at this run again (a due retry, a ready step). The
    # scheduler claims due rows with FOR UPDATE SKIP LOCKED.
    wake_at = models.DateTimeField(null=True)
    # For the run list: what every attempt cost, what the run is on now, its input as text.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    current_label = models.CharField(max_length=200, blank=True, default="")
    search_text = models.TextField(blank=True, default="")  # trigram-indexed (migration 0003)

    class Meta:
        # The run list pages by keyset on (sort column, run_id) within a workspace.
        indexes = [
            models.Index(fields=["workspace", "-updated_at", "-run"], name="summary_ws_updated"),
            models.Index(
                fields=["workspace", "status", "-updated_at", "-run"], name="summary_ws_status"
            ),
            models.Index(fields=["workspace", "-started_at", "-run"], name="summary_ws_started"),
            models.Index(
                fields=["workspace", "workflow", "-updated_at", "-run"], name="summary_ws_workflow"
            ),
            models.Index(
                fields=["wake_at"],
                name="summary_wake_due",
                condition=models.Q(wake_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.status}"


class StepLease(models.Model):
    """Who may record the outcome of a step attempt, and until when.

    Created with the StepStarted event that starts the attempt; deleted in the same
    transaction as the event that ends it. `attempt` is the fencing token: a worker whose
    lease was taken over finds no row to delete and cannot append its late result."""

    pk = models.CompositePrimaryKey("run", "step_id", "attempt")
    run = run_link("leases")
    step_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    worker = models.CharField(max_length=120, blank=True, default="")
    expires_at = models.DateTimeField(db_index=True)
    # How many times the scheduler sent this attempt again while nobody claimed it: each
    # resend waits twice as long, so a backlog longer than a lease is not multiplied.
    resends = models.PositiveSmallIntegerField(default=0, db_default=0)

    def __str__(self) -> str:
        return f"{self.run_id}/{self.step_id}#{self.attempt} until {self.expires_at}"
