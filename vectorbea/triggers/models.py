"""What starts runs without a person pressing Run: inbound webhooks and cron schedules."""

import uuid

from django.conf import settings
from django.db import models

from vectorbea.eventlog.models import Run
from vectorbea.workflows.models import Workflow


class WebhookEndpoint(models.Model):
    """POST /hooks/<public_id>/ with a valid signature starts a run of `workflow`.

    The signing secret is encrypted by the workspace's data key (vectorbea.keys): checking
    a signature needs the secret itself, so it cannot be a one-way hash. It is shown once,
    when the endpoint is made."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="webhooks")
    public_id = models.CharField(max_length=64, unique=True)
    # nonce + AES-256-GCM ciphertext, bound to (workspace, endpoint id) by associated data.
    secret_ciphertext = models.BinaryField()
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Webhook {self.public_id[:8]}… of {self.workflow_id}"

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.id}>"


class WebhookDelivery(models.Model):
    """One event id received by an endpoint (redeliveries of it count on the same row).
    Kept 24 hours for the triggers page; the scheduler prunes older ones."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=100)
    run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.PositiveSmallIntegerField(default=0)  # the HTTP status last answered
    detail = models.CharField(max_length=500, blank=True)  # why it was refused, if it was
    attempts = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(auto_now_add=True)
    last_received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="one_delivery_per_event")
        ]
        indexes = [models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"Delivery {self.event_id} to {self.endpoint_id}"


class Schedule(models.Model):
    """Starts a run of `workflow` with `input` at every time `cron` names in `timezone`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    next_fire_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_error = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_fire_at"], condition=models.Q(enabled=True), name="due_schedules"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"
