"""Emails to approvers when a gate opens or escalates.

Sent after the append commits (projection.project schedules it with on_commit), never
inside it, and a failure is logged, never raised: an email problem must not fail a run.
The link opens the gate's page; deciding there needs a signed-in POST with CSRF, so a
link (forwarded, prefetched by a mail scanner) can never decide anything.
"""

import logging
from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from vectorbea.accounts.models import Membership
from vectorbea.approvals.models import Gate
from vectorbea.approvals.rules import gate_rules, refusal

log = logging.getLogger(__name__)


def gate_url(gate: Gate) -> str:
    path = reverse(
        "gate", kwargs={"ws": gate.workspace.slug, "run_id": gate.run_id, "step_id": gate.step_id}
    )
    return settings.SITE_URL.rstrip("/") + path


def recipients(gate: Gate) -> list[Membership]:
    """The members who may decide the gate now and have an email address."""
    memberships = Membership.objects.filter(workspace_id=gate.workspace_id).select_related("user")
    rules = gate_rules(gate)
    return [
        m
        for m in memberships.order_by("user__username")
        if m.user.is_active
        and m.user.email
        and refusal(m.user.username, m.role, rules, gate.initiator or None, waiting=True) is None
    ]


def notify_approvers(run_id: UUID, gates: Iterable[tuple[str, str]]) -> int:
    """Email the approvers of these (step_id, gate key) openings. Returns emails sent."""
    sent = 0
    for step_id, key in gates:
        try:
            sent += _notify(run_id, step_id, key)
        except Exception:
            log.exception("Could not email the approvers of gate %s of run %s", key, run_id)
    return sent


def _notify(run_id: UUID, step_id: str, key: str) -> int:
    gate = (
        Gate.objects.select_related("workspace", "workflow")
        .filter(run_id=run_id, step_id=step_id, key=key)
        .first()
    )
    if gate is None or not gate.is_waiting:
        return 0
    url = gate_url(gate)
    escalated = gate.level > 0
    subject = f"{'Escalated: ' if escalated else ''}Approval needed: {gate.title}"[:200]
    sent = 0
    for membership in recipients(gate):
        context = {"gate": gate, "url": url, "escalated": escalated, "user": membership.user}
        body = render_to_string("approvals/email_gate.txt", context)
        EmailMessage(subject, body, None, [membership.user.email]).send()
        sent += 1
    return sent
