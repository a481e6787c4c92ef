"""The inbox page, its filters and the navigation's count of gates waiting for you."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.approvals.support import gated, publish_gated, two_gates_in_parallel
from tests.conftest import make_member
from tests.support.workflows import publish
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import cancel_run, decide_gate, start_run

INPUT = {"amount": 40, "customer": "Ada"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def titles(response) -> list[str]:
    import re

    return re.findall(r'<h2 class="gate-title"><a [^>]*>([^<]*)</a>', response.content.decode())


def count_in_nav(response) -> str:
    import re

    match = re.search(r'<span id="inbox-count"[^>]*>(\d+)</span>', response.content.decode())
    assert match, "the navigation has no inbox count"
    return match.group(1)


@pytest.fixture
def omar(acme):
    return make_member("omar", acme, Role.APPROVER)


def test_the_inbox_lists_the_gates_you_may_decide_newest_first(acme, alice, omar):
    workflow = publish_gated(acme)
    start_run(workflow, {"amount": 1, "customer": "Ada"}, started_by=alice)
    start_run(workflow, {"amount": 2, "customer": "Bo"}, started_by=alice)

    response = signed_in(omar).get("/w/acme/inbox/")

    assert response.status_code == 200
    assert titles(response) == ["Refund 2 EUR to Bo?", "Refund 1 EUR to Ada?"]
    page = response.content.decode()
    assert "Check the order first." in page and "Dear Bo" in page  # instructions, payload
    assert page.count('name="decision" value="approve"') == 2
    assert count_in_nav(response) == "2"


def test_gates_you_may_not_decide_are_not_in_your_inbox(acme, alice, omar):
    vera = make_member("vera", acme, Role.VIEWER)
    start_run(publish_gated(acme), INPUT, started_by=omar)  # omar's own run

    assert titles(signed_in(omar).get("/w/acme/inbox/")) == []
    assert titles(signed_in(vera).get("/w/acme/inbox/")) == []
    assert titles(signed_in(alice).get("/w/acme/inbox/")) == ["Refund 40 EUR to Ada?"]
    assert count_in_nav(signed_in(vera).get("/w/acme/inbox/")) == "0"


def test_the_filters_show_decided_and_timed_out_gates_and_one_workflow(acme, alice, omar):
    refunds = publish_gated(acme)
    other = publish(acme, gated(), name="Other")
    decided = start_run(refunds, {"amount": 1, "customer": "Ada"}, started_by=alice)
    start_run(refunds, {"amount": 2, "customer": "Bo"}, started_by=alice)
    start_run(other, {"amount": 3, "customer": "Cy"}, started_by=alice)
    decide_gate(decided.id, "gate", approve=True, actor="omar")
    client = signed_in(omar)

    assert titles(client.get("/w/acme/inbox/")) == ["Refund 3 EUR to Cy?", "Refund 2 EUR to Bo?"]
    assert titles(client.get("/w/acme/inbox/?status=decided")) == ["Refund 1 EUR to Ada?"]
    assert titles(client.get("/w/acme/inbox/?status=timed_out")) == []
    assert titles(client.get(f"/w/acme/inbox/?workflow={other.id}")) == ["Refund 3 EUR to Cy?"]
    assert len(titles(client.get("/w/acme/inbox/?status=all"))) == 3


def test_a_cancelled_run_takes_its_gate_out_of_the_inbox(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    cancel_run(run.id, actor="alice", reason="customer withdrew")

    client = signed_in(omar)
    assert titles(client.get("/w/acme/inbox/")) == []
    assert (
        "The run ended before anyone decided"
        in client.get("/w/acme/inbox/?status=all").content.decode()
    )


def test_two_gates_in_parallel_branches_are_two_items_decided_independently(acme, alice, omar):
    run = start_run(publish(acme, two_gates_in_parallel()), INPUT, started_by=alice)
    from workers import runtime

    runtime.execute_step(run.id, "start", 1)  # no worker here: run the first step inline
    client = signed_in(omar)

    assert sorted(titles(client.get("/w/acme/inbox/"))) == ["Refund 40 EUR to Ada?"] * 2
    decide_gate(run.id, "legal", approve=True, actor="omar", reason="ok")

    page = client.get("/w/acme/inbox/").content.decode()
    assert 'data-step="finance"' in page and 'data-step="legal"' not in page
    assert count_in_nav(client.get("/w/acme/inbox/")) == "1"


def test_the_count_is_in_the_navigation_of_every_workspace_page(acme, alice, omar):
    start_run(publish_gated(acme), INPUT, started_by=alice)

    response = signed_in(omar).get("/w/acme/runs/")

    assert count_in_nav(response) == "1"
    assert 'id="workspace-live"' in response.content.decode()
    assert 'data-topics="inbox' in response.content.decode()


def test_the_inbox_page_is_a_few_queries_however_many_gates_wait(acme, alice, omar):
    workflow = publish_gated(acme)
    client = signed_in(omar)
    start_run(workflow, INPUT, started_by=alice)
    client.get("/w/acme/inbox/")
    with CaptureQueriesContext(connection) as one:
        client.get("/w/acme/inbox/")
    for _ in range(5):
        start_run(workflow, INPUT, started_by=alice)
    with CaptureQueriesContext(connection) as six:
        client.get("/w/acme/inbox/")

    assert len(six) == len(one)


def test_a_page_whose_socket_reconnects_fetches_the_count_it_may_have_missed(acme, alice, omar):
    start_run(publish_gated(acme), INPUT, started_by=alice)

    response = signed_in(omar).get("/w/acme/inbox/count/")

    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<span id="inbox-count"') and ">1</span>" in html
    assert 'data-live-refresh="/w/acme/inbox/count/"' in html
