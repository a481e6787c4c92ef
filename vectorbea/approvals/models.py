"""The inbox's read model: one row per gate (an opening of an approval step).

`Gate` is a projection of the event log, like RunSummary: only
`vectorbea.approvals.projection` writes it, from the folded state of the run, and
`rebuild_gates` recomputes every row from the log with the same function."""

from django.db import models

from vectorbea.accounts.models import Workspace
from vectorbea.eventlog.models import Run
from vectorbea.workflows.models import Workflow


class GateStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    TIMED_OUT = "timed_out", "Timed out"
    CLOSED = "closed", "Closed"  # the run ended (cancelled, failed elsewhere) before a decision


class Gate(models.Model):
    run = models.ForeignKey(Run, on_delete=models.DO_NOTHING, related_name="gates")
    workspace = models.ForeignKey(Workspace, on_delete=models.DO_NOTHING, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.DO_NOTHING, related_name="+")
    step_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    key = models.CharField(max_length=80)
    step_name = models.CharField(max_length=200, blank=True, default="")
    title = models.CharField(max_length=300, blank=True, default="")
    instructions = models.TextField(blank=True, default="")
    payload = models.JSONField(null=True)
    form = models.JSONField(default=list)
    run_input = models.JSONField(null=True)
    status = models.CharField(max_length=16, choices=GateStatus.choices)
    approved = models.BooleanField(null=True)
    # Who may decide now (after an escalation, the escalated set).
    approver_roles = models.JSONField(default=list)
    approver_users = models.JSONField(default=list)
    required = models.PositiveSmallIntegerField(default=1)
    granted_by = models.JSONField(default=list)
    allow_self_approval = models.BooleanField(default=False)
    initiator = models.CharField(max_length=150, blank=True, default="")
    level = models.PositiveSmallIntegerField(default=0)  # escalations so far
    # The escalation still to come ({"approvers", "timeout_seconds", "on_timeout"}), which
    # an owner or admin may take early; None: the workflow sets none, or it was taken.
    escalation = models.JSONField(null=True)
    requested_at = models.DateTimeField()
    timeout_at = models.DateTimeField(null=True)
    decided_at = models.DateTimeField(null=True)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    # The seq of the last event that changed this row: a late writer never overwrites a
    # newer row with an older one.
    updated_seq = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id", "attempt"], name="one_row_per_gate")
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "-requested_at"], name="gate_ws_status"),
            models.Index(fields=["workspace", "-requested_at"], name="gate_ws_requested"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.key}: {self.status}"

    @property
    def is_waiting(self) -> bool:
        return self.status == GateStatus.WAITING

    @property
    def badge(self) -> str:
        """The status badge's colour, in the design system's run-status names."""
        return BADGES.get(self.status, "pending")


BADGES = {
    GateStatus.WAITING: "waiting",
    GateStatus.APPROVED: "completed",
    GateStatus.DENIED: "denied",
    GateStatus.TIMED_OUT: "retrying",
    GateStatus.CLOSED: "cancelled",
}
