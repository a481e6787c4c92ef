"""Emails to approvers when a gate opens or escalates: after commit, with a link that never
decides, and never failing the run."""

import pytest
from django.core import mail

from tests.approvals.support import publish_gated
from tests.approvals.test_projection import advance_to_now
from tests.conftest import make_member
from tests.support.live import run_status
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.runs.commands import decide_gate, start_run

INPUT = {"amount": 40, "customer": "Ada"}


@pytest.fixture
def team(acme, alice):
    make_member("omar", acme, Role.APPROVER)
    make_member("vera", acme, Role.VIEWER)
    make_member("eddie", acme, Role.EDITOR)
    make_member("carol", acme, Role.ADMIN)


def sent_to() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


@pytest.mark.django_db(transaction=True)
def test_the_approvers_get_an_email_with_a_link_when_a_gate_opens(acme, alice, team, settings):
    settings.SITE_URL = "https://vectorbea.example.com"
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    # alice started the run (no self-approval); vera and eddie cannot decide
    assert sent_to() == ["carol@example.com", "omar@example.com"]
    message = mail.outbox[0]
    assert message.subject == "Approval needed: Refund 40 EUR to Ada?"
    link = f"https://vectorbea.example.com/w/acme/inbox/{run.id}/gate/"
    assert link in message.body
    assert "decide" not in link and "approve" not in link
    assert "nothing is decided until you choose on the page" in message.body


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_before_the_append_commits(acme, alice, team):
    from django.db import transaction

    with transaction.atomic():
        start_run(publish_gated(acme), INPUT, started_by=alice)
        assert mail.outbox == []
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_a_decision_sends_nothing_and_an_escalation_emails_the_new_approvers(acme, alice, team):
    escalate = {"approvers": {"users": ["eddie"]}, "timeout_seconds": 600}
    workflow = publish_gated(acme, timeout_seconds=60, on_timeout="escalate", escalate=escalate)
    run = start_run(workflow, INPUT, started_by=alice)
    mail.outbox.clear()

    advance_to_now(run.id, 61)

    assert sent_to() == ["eddie@example.com"]
    assert mail.outbox[0].subject.startswith("Escalated: Approval needed")
    mail.outbox.clear()
    decide_gate(run.id, "gate", approve=True, actor="eddie")
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_an_email_failure_does_not_fail_the_run(acme, alice, team, monkeypatch, caplog):
    from django.core.mail import EmailMessage

    def broken(self, *args, **kwargs):
        raise ConnectionRefusedError("no mail server")

    monkeypatch.setattr(EmailMessage, "send", broken)

    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    assert Gate.objects.get(run=run).status == "waiting"
    assert run_status(run.id) == "waiting"
    assert "Could not email the approvers" in caplog.text
    decide_gate(run.id, "gate", approve=True, actor="omar")
    assert Gate.objects.get(run=run).status == "approved"
