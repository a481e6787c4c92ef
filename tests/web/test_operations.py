"""The operations page: workers that are up, queue depths, dead letters with re-drive, and
the workspace's runs by status, timers due and recent failures by class."""

import json
import re
import time
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from dramatiq.message import Message

from tests.conftest import make_member
from tests.support.live import flush_own_redis, wait_for
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.front import operations
from vectorbea.runs.commands import start_run
from vectorbea.runs.templatetags.runs import uptime
from workers import announce
from workers.broker import broker


@pytest.fixture(autouse=True)
def own_redis():
    flush_own_redis()
    yield
    flush_own_redis()


def url(name: str = "operations") -> str:
    return reverse(name, kwargs={"ws": "acme"})


def dead_letter(queue: str = "steps") -> str:
    """A message Dramatiq gave up on, as its Redis broker stores it."""
    message = Message(
        queue_name=queue,
        actor_name="execute_step",
        args=("r", "s0", 1),
        kwargs={},
        options={"redis_message_id": str(uuid.uuid4())},
    )
    key = f"{broker.namespace}:{queue}.XQ"
    message_id = message.options["redis_message_id"]
    broker.client.zadd(key, {message_id: int(time.time() * 1000)})
    broker.client.hset(f"{key}.msgs", message_id, message.encode())
    return message_id


def test_an_owner_sees_queues_runs_and_failures(transactional_db, client, alice, acme):
    run = start_run(publish(acme, chain(2)), {})  # its first step waits on the steps queue
    client.force_login(alice)

    page = client.get(url())

    assert page.status_code == 200
    html = page.content.decode()
    assert "No worker has reported" in html  # nothing is running the queue
    steps = next(queue for queue in operations.queues() if queue.name == "steps")
    assert steps.waiting == 1 and steps.oldest_seconds is not None
    assert operations.workspace_figures(acme.id)["by_status"] == [("running", 1)]
    assert str(run.id) not in html  # figures, not run data
    fragment = client.get(url(), headers={"HX-Request": "true"}).content.decode()
    assert fragment.count("<h2") == 4  # workers, queues, runs, timers and failures
    assert "Timers due now" in fragment


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (9.6, "Up 9 s"),
        (917, "Up 15 min"),
        (7500, "Up 2 h 5 min"),
        (3 * 86400 + 4 * 3600, "Up 3 d 4 h"),
    ],
)
def test_a_workers_uptime_is_in_units_a_person_reads(seconds, shown):
    assert uptime(seconds) == shown


def test_viewers_and_editors_may_not_see_it_and_strangers_get_404(client, acme, bob):
    client.force_login(make_member("vera", acme, Role.EDITOR))
    assert client.get(url()).status_code == 403
    client.force_login(bob)
    assert client.get(url()).status_code == 404


def test_installation_staff_re_drive_a_dead_letter_and_owners_may_not(client, alice, acme):
    message_id = dead_letter()
    client.force_login(alice)
    assert "Re-drive" not in client.get(url()).content.decode()
    assert (
        client.post(url("operations-redrive"), {"queue": "steps", "id": message_id}).status_code
        == 403
    )

    alice.is_staff = True
    alice.save()
    page = client.get(url()).content.decode()
    assert "Re-drive" in page and "execute_step" in page
    response = client.post(url("operations-redrive"), {"queue": "steps", "id": message_id})

    assert response.status_code == 302
    steps = next(queue for queue in operations.queues() if queue.name == "steps")
    assert (steps.dead, steps.waiting) == (0, 1)
    waiting_id = broker.client.lindex(f"{broker.namespace}:steps", 0)
    data = json.loads(broker.client.hget(f"{broker.namespace}:steps.msgs", waiting_id))
    assert data["args"] == ["r", "s0", 1] and data["actor_name"] == "execute_step"


def test_staff_see_the_tables_rewritten_at_every_step_and_when_autovacuum_is_off(
    client, alice, acme
):
    client.force_login(alice)
    assert "Database upkeep" not in client.get(url()).content.decode()  # staff only
    alice.is_staff = True
    alice.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum')::bool")
        autovacuum_on = cursor.fetchone()[0]  # off on the CI machine (its conf.d)
        cursor.execute("ALTER TABLE eventlog_steplease SET (autovacuum_enabled = false)")

    page = client.get(url(), headers={"HX-Request": "true"}).content.decode()  # live part

    assert "Database upkeep" in page
    rows = re.findall(r"<tr><td><code>(\w+)</code></td><td>(\d+)</td><td>(\d+)</td>", page)
    assert [name for name, _, _ in rows] == ["eventlog_runsummary", "eventlog_steplease"]
    warning = re.search(r'<p class="message message-warning" role="alert">(.*?)</p>', page, re.S)
    assert "<code>eventlog_steplease</code>" in warning[1]  # off for this table alone
    assert ("<code>eventlog_runsummary</code>" in warning[1]) is not autovacuum_on

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE eventlog_steplease RESET (autovacuum_enabled)")
    page = client.get(url()).content.decode()
    assert ('role="alert">Postgres\' autovacuum is off' in page) is not autovacuum_on


def test_a_running_worker_is_listed(live, acme):
    worker = live.worker(threads=3)

    found = wait_for(lambda: announce.listed(), timeout=30)  # its own Redis db: ours only
    del worker

    assert found[0]["threads"] == 3
    assert set(found[0]["queues"]) >= {"runs", "steps", "llm"}
