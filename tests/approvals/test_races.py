"""Exactly one decision: two approvers clicking at once, and a click racing the timeout.
Real database, real threads, each with its own connection."""

import threading
import time
from datetime import datetime, timedelta
from functools import partial

import pytest
from django.db import connection
from django.test import Client

from tests.approvals.support import decisions, payloads, publish_gated
from tests.conftest import make_member
from tests.support.live import event_types
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.runs.commands import start_run
from workers import runtime

pytestmark = pytest.mark.django_db(transaction=True)

INPUT = {"amount": 40, "customer": "Ada"}


def at_once(*actions):
    """Run the actions on threads released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(index, action):
        barrier.wait()
        try:
            results[index] = action()
        except Exception as exc:  # reported to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def approving(user, run):
    client = Client()
    client.force_login(user)
    url = f"/w/acme/inbox/{run.id}/gate/decide/"

    def post():
        response = client.post(url, {"decision": "approve", "gate": "gate:1", "reason": "ok"})
        return response.status_code, response.content.decode()

    return post


def test_two_simultaneous_approvals_record_exactly_one(acme, alice):
    omar = make_member("omar", acme, Role.APPROVER)
    olga = make_member("olga", acme, Role.APPROVER)
    for _ in range(3):
        run = start_run(publish_gated(acme), INPUT, started_by=alice)

        first, second = at_once(approving(omar, run), approving(olga, run))

        assert sorted([first[0], second[0]]) == [302, 409]
        assert decisions(run.id) == ["ApprovalGranted"]
        (granted,) = payloads(run.id, "ApprovalGranted")
        loser = first if first[0] == 409 else second
        assert f"already approved by {granted['actor']} at 20" in loser[1]
        assert Gate.objects.get(run=run).decided_by == granted["actor"]


def test_the_same_person_double_clicking_approves_once(acme, alice):
    omar = make_member("omar", acme, Role.APPROVER)
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    results = at_once(approving(omar, run), approving(omar, run))

    assert sorted(status for status, _ in results) in ([302, 403], [302, 409])
    assert decisions(run.id) == ["ApprovalGranted"]


def wait_until(iso: str, before: float = 0.0) -> None:
    from vectorbea.eventlog import store

    deadline = datetime.fromisoformat(iso) - timedelta(seconds=before)
    while store.db_now() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("before", [0.15, 0.05, 0.0])
def test_an_approval_racing_the_timeout_at_the_deadline_has_exactly_one_outcome(
    acme, alice, before
):
    omar = make_member("omar", acme, Role.APPROVER)
    for _ in range(3):
        run = start_run(publish_gated(acme, timeout_seconds=0.5), INPUT, started_by=alice)
        (requested,) = payloads(run.id, "ApprovalRequested")
        wait_until(requested["timeout_at"], before)

        # The approver's click and the scheduler's wake-up at the deadline, at once.
        results = at_once(approving(omar, run), partial(runtime.advance, run.id))

        types = event_types(run.id)
        verdicts = [t for t in types if t in ("ApprovalGranted", "ApprovalTimedOut")]
        assert len(verdicts) == 1, types
        assert types.count("StepCompleted") == 1
        status, page = results[0]
        if verdicts == ["ApprovalGranted"]:
            assert status == 302
        else:  # the timeout won: the approver is told so, and nothing of theirs is recorded
            assert status == 409 and "automatically at its timeout" in page
        expected = "approved" if verdicts == ["ApprovalGranted"] else "timed_out"
        assert Gate.objects.get(run=run).status == expected
        if before == 0.0:  # after the deadline the timeout wins, whoever writes first
            assert verdicts == ["ApprovalTimedOut"]


def test_an_approval_after_the_deadline_is_told_the_gate_timed_out(acme, alice):
    omar = make_member("omar", acme, Role.APPROVER)
    run = start_run(publish_gated(acme, timeout_seconds=0.3), INPUT, started_by=alice)
    (requested,) = payloads(run.id, "ApprovalRequested")
    wait_until(requested["timeout_at"])  # no scheduler: nobody has recorded the timeout yet

    status, page = approving(omar, run)()

    assert status == 409
    assert "already denied automatically at its timeout" in page
    assert "ApprovalTimedOut" in event_types(run.id)
    assert decisions(run.id) == []
    assert Gate.objects.get(run=run).status == "timed_out"
