"""Watching runs live in a real browser, while real worker and scheduler processes move them.

The run page's timeline must equal the event log exactly (no gaps, no duplicates), even
after the server is killed mid-run and the browser's websocket reconnects to a new one."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    ARTIFACTS,
    ROOT,
    VIEWPORT,
    LiveServer,
    database_url_for_tests,
    free_port,
    screenshot_path,
    sign_in,
    wait_until_up,
)
from tests.support.live import event_rows, run_status, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class RestartableDaphne:
    """A daphne of this test's own on a fixed port, so it can be killed (the browser sees
    its websocket drop: close code 1006) and started again where the browser reconnects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.log = ARTIFACTS / f"daphne-restartable-{worker}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test",
            "DATABASE_URL": database_url_for_tests(),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_PREFIX": settings.REDIS_PREFIX,
            "PYTHONUNBUFFERED": "1",
        }
        daphne = str(Path(sys.executable).with_name("daphne"))
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [daphne, "-b", "127.0.0.1", "-p", str(self.port), "vectorbea.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until_up(LiveServer(self.url, self.process, self.log))

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def daphne(django_db_blocker) -> Iterator[RestartableDaphne]:
    server = RestartableDaphne()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def own_page(browser: Browser, daphne: RestartableDaphne, request) -> Iterator[Page]:
    """Like the `page` fixture, but a dropped websocket's console error is expected here."""
    context = browser.new_context(base_url=daphne.url, viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield page
        # While the server is down: Chromium's "WebSocket connection ... failed", the ws
        # extension's log of the error event ("[object Event]"), and htmx's logs of any
        # other request that failed meanwhile (e.g. a polled badge in the top bar).
        expected = (
            "WebSocket",
            "Failed to load resource",
            "[object Event]",
            "htmx:sendError",
            "htmx:afterRequest",
        )
        serious = [p for p in problems if p != "undefined" and not any(e in p for e in expected)]
        assert serious == [], f"Browser console errors: {serious}"
    finally:
        try:
            page.screenshot(path=screenshot_path(request.node.name), full_page=True)
        finally:
            context.close()


def dom_seqs(page: Page) -> list[int]:
    return page.eval_on_selector_all(
        "#timeline [data-seq]", "rows => rows.map(r => parseInt(r.dataset.seq, 10))"
    )


def dom_types(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#timeline [data-seq]", "rows => rows.map(r => r.dataset.type)"
    )


def flaky_then_slow(acme):
    """s0 fails once (transient) and is retried fast; s1 and s2 take a while."""
    definition = chain(4, "tool", {"tool": "record", "args": {"sleep": 1.5}})
    definition["steps"][0] = {
        "id": "s0",
        "kind": "tool",
        "name": "Fetch",
        "config": {"tool": "fail_until", "args": {"attempt": 2}},
        "retry": FAST_RETRY,
    }
    definition["steps"][3]["config"] = {"tool": "record", "args": {"sleep": 0}}
    return publish(acme, definition, name="Flaky then slow")


def test_the_timeline_follows_the_worker_live_and_equals_the_log_after_a_server_restart(
    own_page: Page, daphne: RestartableDaphne, live, alice, acme
):
    page = own_page
    run = start_run(flaky_then_slow(acme), {"customer": "Initech"})
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    expect(page.locator("#timeline [data-seq]")).to_have_count(2)  # RunStarted, StepStarted
    page.evaluate("window.__notReloaded = true")

    live.worker()
    live.scheduler()

    # Each kind of event appears without a reload, in the order of the log.
    timeline = page.locator("#timeline")
    for selector in (
        '[data-type="StepFailed"]',
        '[data-type="RetryScheduled"]',
        '[data-type="StepCompleted"]',
    ):
        expect(timeline.locator(selector).first).to_be_attached()
    expect(timeline.locator('[data-type="StepFailed"]').first).to_contain_text(
        "Step 'Fetch' failed"
    )
    # s1 has started and sleeps: kill the server mid-run.
    expect(timeline.locator('[data-type="StepStarted"]')).to_have_count(3)
    assert page.evaluate("window.__notReloaded") is True
    seen_before = dom_seqs(page)
    assert seen_before == list(range(1, len(seen_before) + 1))
    assert run_status(run.id) != "completed"
    daphne.kill()
    expect(page.locator("#live")).to_be_attached()
    wait_for(lambda: len(event_rows(run.id)) > seen_before[-1], timeout=15)  # run moved on
    daphne.start()  # the websocket reconnects, says its last seq, and is backfilled

    expect(timeline.locator('[data-type="RunCompleted"]')).to_have_count(1, timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    log = event_rows(run.id)
    assert dom_seqs(page) == [seq for seq, _, _ in log]
    assert dom_types(page) == [type_ for _, type_, _ in log]
    expect(page.locator("#run-status")).to_have_attribute("data-status", "completed")
    expect(page.locator('.graph-node[data-step="s3"]')).to_have_attribute(
        "data-status", "completed"
    )


def test_the_run_list_updates_a_row_live_and_notices_new_runs(page: Page, live, alice, acme):
    workflow = publish(acme, chain(2, "tool", {"tool": "record", "args": {"sleep": 0.2}}))
    run = start_run(workflow, {"customer": "Initech"})
    sign_in(page, "alice")
    page.goto("/w/acme/runs/")
    row = page.locator(f"#run-{run.id}")
    expect(row).to_have_attribute("data-status", "running")
    page.locator(f'#run-{run.id} input[name="run"]').check()

    live.worker()

    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator(".badge")).to_have_text("Completed")
    expect(page.locator(f'#run-{run.id} input[name="run"]')).to_be_checked()  # kept
    expect(page.locator("#selected-count")).to_have_text("1")

    new = start_run(workflow, {"customer": "Globex"})
    # A run not on the page shows a notice (or, if the socket reconnected meanwhile, the
    # page's rows were reloaded and it is simply there).
    expect(page.locator(f"#new-runs:not([hidden]), #run-{new.id}").first).to_be_visible()
    page.screenshot(path=screenshot_path("review-runs-list-live"), full_page=True)


def test_bulk_retry_and_cancel_from_the_list(page: Page, alice, acme):
    workflow = publish(acme, chain(2))
    runs = [start_run(workflow, {"i": i}) for i in range(3)]
    sign_in(page, "alice")
    page.goto("/w/acme/runs/")
    for run in runs[:2]:
        page.locator(f'#run-{run.id} input[name="run"]').check()
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel 2 runs? ..."
    page.get_by_role("button", name="Cancel", exact=True).click()
    results = page.locator("#bulk-result")
    expect(results).to_contain_text("Cancelled.")
    for run in runs[:2]:
        expect(page.locator(f"#run-{run.id}")).to_have_attribute("data-status", "cancelled")
    expect(page.locator(f"#run-{runs[2].id}")).to_have_attribute("data-status", "running")
    page.locator(f'#run-{runs[2].id} input[name="run"]').check()
    page.get_by_role("button", name="Retry from failed step").click()
    expect(results).to_contain_text("Only a run that failed at a step can be retried from it.")
