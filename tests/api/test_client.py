"""The Python client (clients/python/vectorbea_client.py) against the real app, through
httpx's WSGI transport: start, follow, wait, decide, and refusals as VectorbeaError."""

import httpx
import pytest
from django.core.wsgi import get_wsgi_application

from clients.python.vectorbea_client import Vectorbea, VectorbeaError
from tests.api.support import token_for
from tests.approvals.support import publish_gated
from tests.conftest import make_member
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role, Workspace
from workers import runtime


@pytest.fixture
def acme_vb(transactional_db):
    """A client with an admin token of Acme; the app answers in this process and sees only
    committed rows, hence transactional_db."""
    acme = Workspace.objects.create(slug="acme", name="Acme")
    transport = httpx.WSGITransport(app=get_wsgi_application())
    with Vectorbea(
        "http://localhost", token_for(acme, Role.ADMIN, "sdk"), transport=transport
    ) as vb:
        yield acme, vb


def test_the_client_starts_follows_and_waits_for_a_run(acme_vb):
    acme, vb = acme_vb
    workflow = publish(acme, chain(2), name="Triage")

    run = vb.start_run(str(workflow.id), {"ticket": "a"}, idempotency_key="t-1")
    assert vb.start_run(str(workflow.id), {"ticket": "a"}, idempotency_key="t-1")["id"] == run["id"]
    assert [w["name"] for w in vb.workflows()] == ["Triage"]

    with pytest.raises(TimeoutError):
        vb.wait(run["id"], timeout=0.2, poll_seconds=0.05)
    runtime.execute_step(run["id"], "s0", 1)  # no worker here: run the steps inline
    finished = vb.wait(run["id"], timeout=5, poll_seconds=0.05)

    assert finished["status"] == "completed"
    events = vb.events(run["id"])
    assert events[-1]["type"] == "RunCompleted"
    assert vb.events(run["id"], after=events[-1]["seq"]) == []
    with pytest.raises(VectorbeaError) as refused:
        vb.cancel(run["id"])
    assert refused.value.status == 409
    with pytest.raises(VectorbeaError, match="Only a run that failed"):
        vb.retry(run["id"])


def test_the_client_decides_approvals(acme_vb):
    acme, vb = acme_vb
    run = vb.start_run(str(publish_gated(acme).id), {"amount": 40, "customer": "Ada"})
    sdk_started = vb.approvals()  # a token may not approve a run it started
    assert [a["run_id"] for a in sdk_started] == []

    other = Vectorbea(
        "http://localhost",
        token_for(acme, Role.APPROVER, "other", by=make_member("omar", acme, Role.APPROVER)),
        transport=httpx.WSGITransport(app=get_wsgi_application()),
    )
    (approval,) = other.approvals()
    with pytest.raises(VectorbeaError) as refused:
        other.decide(approval["run_id"], approval["step_id"], approve=False)
    assert refused.value.status == 422
    assert refused.value.problems[0]["path"] == "reason"

    decided = other.decide(run["id"], "gate", approve=True, reason="fine", gate=approval["gate"])

    assert (decided["status"], decided["decided_by"]) == ("approved", "api:other")
    other.close()


def test_the_client_raises_on_bad_input_with_the_problems(acme_vb):
    acme, vb = acme_vb
    workflow = publish(acme, {**chain(1), "input_schema": {"type": "object", "required": ["x"]}})

    with pytest.raises(VectorbeaError) as refused:
        vb.start_run(str(workflow.id), {})

    assert refused.value.status == 422
    assert refused.value.problems == [{"path": "input", "message": "'x' is a required property"}]
