"""UI benchmark: the run list and a 10,000-event run page at scale, and how long an appended
event takes to reach a browser. Prints figures; asserts nothing.

    .venv/bin/python bench/ui.py [--requests 200] [--events 50] [--fresh]

Seeds (once) 100,000 runs and ~2,000,000 events into the bench database (vectorbea_bench)
with INSERT ... SELECT over generate_series: the events are the same facts the engine
writes and every summary row is summary_fields() of the fold of its run's events. Server
times use Django's test Client in this process, warm. The browser figure uses a daphne
subprocess and Chromium (Playwright) against the same database and Redis db 15.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import BENCH_DB, ENV, ROOT, percentile, setup_django

RUNS = 100_000
BIG_RUN_EVENTS = 10_000
WORKSPACE = "bench-ui"
USERS = ("ada", "grace", "linus", "margaret", "ken")
STEP_NAMES = ("Fetch ticket", "Classify", "Summarise", "Draft reply", "Post reply")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
USAGE = {"model": "fake-1", "input_tokens": 900, "output_tokens": 120, "cost_usd": 0.0021}


def definition(max_attempts: int = 5) -> dict:
    steps = [
        {
            "id": f"s{i}",
            "kind": "noop",
            "name": name,
            "config": {},
            "retry": {"maximum_attempts": max_attempts, "initial_interval_seconds": 2},
        }
        for i, name in enumerate(STEP_NAMES)
    ]
    edges = [{"source": f"s{i}", "target": f"s{i + 1}", "port": None} for i in range(4)]
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def ok(step: str, attempt: int = 1) -> list:
    from vectorbea.engine import StepCompleted, StepStarted

    return [StepStarted(step, attempt), StepCompleted(step, attempt, {"ok": True}, usage=USAGE)]


def flaky(step: str, error: str = "transient") -> list:
    from vectorbea.engine import RetryScheduled, StepFailed, StepStarted

    return [
        StepStarted(step, 1),
        StepFailed(step, 1, error, "provider overloaded (529)", usage=USAGE),
        RetryScheduled(step, 2, "2026-01-01T00:00:30+00:00", 2.0, error),
        *ok(step, 2),
    ]


def templates() -> dict[str, tuple[int, list]]:
    """Each kind of run as its events after RunStarted, with its share of the runs (in
    tenths): about 20 events a run on average."""
    from vectorbea.engine import (
        RetryScheduled,
        RunCancelled,
        RunCompleted,
        RunFailed,
        RunPaused,
        RunResumed,
        StepFailed,
        StepStarted,
    )

    done = [*ok("s0"), *flaky("s1"), *ok("s2"), *flaky("s3", "rate_limited"), *ok("s4")]
    return {
        "completed": (
            6,
            [*done, RunPaused("ada", "checking"), RunResumed("ada"), RunCompleted({})],
        ),
        "failed": (
            1,
            [
                *ok("s0"),
                *flaky("s1"),
                *ok("s2"),
                *flaky("s3"),
                StepStarted("s4", 1),
                RunPaused("grace", "looking into it"),
                RunResumed("grace"),
                StepFailed("s4", 1, "permanent", "HTTP 400: missing field 'to'"),
                RunFailed("Step 'Post reply' failed: HTTP 400: missing field 'to'", "s4"),
            ],
        ),
        "retrying": (
            1,
            [
                *ok("s0"),
                *flaky("s1"),
                *ok("s2"),
                *flaky("s3"),
                StepStarted("s4", 1),
                RunPaused("linus", ""),
                RunResumed("linus"),
                StepFailed("s4", 1, "transient", "timeout", usage=USAGE),
                RetryScheduled("s4", 2, "2026-01-01T00:05:00+00:00", 30.0, "transient"),
            ],
        ),
        "paused": (
            1,
            [*ok("s0"), *flaky("s1"), *flaky("s2"), RunPaused("grace", ""), *flaky("s3")],
        ),
        "cancelled": (
            1,
            [
                *ok("s0"),
                *flaky("s1"),
                *flaky("s2"),
                RunPaused("ken", ""),
                RunResumed("ken"),
                *flaky("s3"),
                RunCancelled("ken", "stale"),
            ],
        ),
    }


def seeded(cursor) -> bool:
    cursor.execute(
        "SELECT count(*) FROM eventlog_run r JOIN accounts_workspace w ON w.id = r.workspace_id "
        "WHERE w.slug = %s",
        [WORKSPACE],
    )
    return cursor.fetchone()[0] >= RUNS


def seed() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from vectorbea.accounts.models import Membership, Role, Workspace
    from vectorbea.engine import Recorded, RunStarted, event_to_payload, fold
    from vectorbea.engine.graph import Definition
    from vectorbea.eventlog.projections import COLUMNS, JSON_COLUMNS, summary_fields
    from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

    with connection.cursor() as cursor:
        if seeded(cursor):
            print("Bench data already seeded (use --fresh to start over).")
            return
    started = time.perf_counter()
    workspace, _ = Workspace.objects.get_or_create(slug=WORKSPACE, defaults={"name": "Bench UI"})
    users = []
    for name in USERS:
        user, _ = get_user_model().objects.get_or_create(username=name)
        user.set_password("bench")
        user.save()
        Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": Role.EDITOR}
        )
        users.append(user)
    workflows = []
    for name in ("Support triage", "Nightly digest", "Invoice check", "Leads"):
        body = definition()
        workflow = Workflow.objects.create(workspace=workspace, name=name, draft=body)
        version = WorkflowVersion.objects.create(
            workflow=workflow, number=1, definition=body, content_hash=content_hash(body)
        )
        workflows.append((workflow, version))
    parsed = Definition.from_json(definition())
    kinds = templates()
    slots = [kind for kind, (share, _) in kinds.items() for _ in range(share)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_runs ON COMMIT DROP AS "
            "SELECT n, gen_random_uuid() AS id, "
            "  now() - (n * interval '26 seconds') AS created_at, "
            "  (n %% %s) AS wf, (n %% %s) AS who, (n %% %s) AS slot "
            "FROM generate_series(1, %s) n",
            [len(workflows), len(users), len(slots), RUNS - 1],
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_wf (wf int, workflow_id uuid, version_id uuid) ON COMMIT DROP"
        )
        for i, (workflow, version) in enumerate(workflows):
            cursor.execute("INSERT INTO bench_wf VALUES (%s, %s, %s)", [i, workflow.id, version.id])
        cursor.execute(
            "CREATE TEMP TABLE bench_who (who int, user_id int, name text) ON COMMIT DROP"
        )
        for i, user in enumerate(users):
            cursor.execute("INSERT INTO bench_who VALUES (%s, %s, %s)", [i, user.pk, user.username])
        cursor.execute(
            "INSERT INTO eventlog_run (id, workspace_id, workflow_id, version_id, started_by_id, "
            "created_at) SELECT r.id, %s, f.workflow_id, f.version_id, u.user_id, r.created_at "
            "FROM bench_runs r JOIN bench_wf f USING (wf) JOIN bench_who u USING (who)",
            [workspace.id],
        )
        # The events after RunStarted, per kind of run: (slot, seq, type, version, payload).
        cursor.execute(
            "CREATE TEMP TABLE bench_tpl (slot int, seq int, type text, v int, payload jsonb) "
            "ON COMMIT DROP"
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_sum (slot int, last_seq int, status text, steps jsonb, "
            "current_steps jsonb, attempts int, error text, terminal bool, cost numeric, "
            "label text) ON COMMIT DROP"
        )
        for slot, kind in enumerate(slots):
            events = kinds[kind][1]
            for seq, event in enumerate(events, 2):
                cursor.execute(
                    "INSERT INTO bench_tpl VALUES (%s, %s, %s, %s, %s)",
                    [
                        slot,
                        seq,
                        type(event).__name__,
                        event.schema_version,
                        json.dumps(event_to_payload(event)),
                    ],
                )
            log = [Recorded(1, T0, RunStarted("w", "v", {}, "ada"))] + [
                Recorded(seq, T0 + timedelta(seconds=2 * seq), e) for seq, e in enumerate(events, 2)
            ]
            state = fold(log)
            fields = summary_fields(state, parsed, log[-1].at)
            cursor.execute(
                "INSERT INTO bench_sum VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    slot,
                    fields["last_seq"],
                    fields["status"],
                    json.dumps(fields["steps"]),
                    json.dumps(fields["current_steps"]),
                    fields["attempts"],
                    fields["error"],
                    state.is_terminal,
                    fields["cost_usd"],
                    fields["current_label"],
                ],
            )
        cursor.execute(
            "INSERT INTO eventlog_event (run_id, seq, type, schema_version, payload, created_at) "
            "SELECT r.id, 1, 'RunStarted', 1, jsonb_build_object('workflow_id', f.workflow_id, "
            "  'version_id', f.version_id, 'started_by', u.name, 'input', "
            "  jsonb_build_object('customer', 'customer-' || r.n, 'ticket', r.n)), "
            "  r.created_at + interval '2 seconds' "
            "FROM bench_runs r JOIN bench_wf f USING (wf) JOIN bench_who u USING (who)"
        )
        cursor.execute(
            "INSERT INTO eventlog_event (run_id, seq, type, schema_version, payload, created_at) "
            "SELECT r.id, t.seq, t.type, t.v, t.payload, r.created_at + t.seq * interval '2 s' "
            "FROM bench_runs r JOIN bench_tpl t USING (slot)"
        )
        cursor.execute(
            "INSERT INTO eventlog_runsummary (run_id, workspace_id, workflow_id, "
            + ", ".join(COLUMNS)
            + ") SELECT r.id, %s, f.workflow_id, s.status, s.last_seq, s.steps, "
            "  s.current_steps, s.attempts, s.error, r.created_at + interval '2 seconds', "
            "  CASE WHEN s.terminal THEN r.created_at + s.last_seq * interval '2 s' END, "
            "  r.created_at + s.last_seq * interval '2 s', NULL, s.cost, s.label, "
            '  format(\'{"customer": "customer-%%s", "ticket": %%s}\', r.n, r.n) '
            "FROM bench_runs r JOIN bench_wf f USING (wf) JOIN bench_sum s USING (slot)",
            [workspace.id],
        )
    assert JSON_COLUMNS == ("steps", "current_steps")
    big = seed_big_run(workspace, users[0])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM eventlog_event")
        events = cursor.fetchone()[0]
    print(
        f"Seeded {RUNS:,} runs and {events:,} events (incl. run {big} with "
        f"{BIG_RUN_EVENTS:,}) in {time.perf_counter() - started:.0f} s"
    )


def seed_big_run(workspace, user) -> str:
    """One run with 10,000 events: a step retried thousands of times. Written with its
    checkpoints (every 25 events) and summary, as the engine would have."""
    from django.db import connection, transaction

    from vectorbea.engine import (
        Recorded,
        RetryScheduled,
        RunStarted,
        StepFailed,
        StepStarted,
        event_to_payload,
        fold,
        state_to_json,
    )
    from vectorbea.engine.graph import Definition
    from vectorbea.eventlog.models import Run
    from vectorbea.eventlog.projections import RunSummaryProjection
    from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

    body = definition(max_attempts=10_000)
    workflow = Workflow.objects.create(workspace=workspace, name="Stubborn", draft=body)
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, definition=body, content_hash=content_hash(body)
    )
    run = Run.objects.create(
        workspace=workspace, workflow=workflow, version=version, started_by=user
    )
    events = [RunStarted(str(workflow.id), str(version.id), {"customer": "big"}, user.username)]
    events += ok("s0")
    attempt = 1
    while len(events) + 3 <= BIG_RUN_EVENTS:
        events += [
            StepStarted("s1", attempt),
            StepFailed("s1", attempt, "transient", f"timeout #{attempt}"),
            RetryScheduled("s1", attempt + 1, "2026-01-01T00:00:30+00:00", 1.0, "transient"),
        ]
        attempt += 1
    events.append(StepStarted("s1", attempt))
    start = datetime.now(UTC) - timedelta(hours=3)
    log = [Recorded(i, start + timedelta(seconds=i), e) for i, e in enumerate(events, 1)]
    with transaction.atomic(), connection.cursor() as cursor:
        for chunk in range(0, len(log), 1000):
            part = log[chunk : chunk + 1000]
            cursor.executemany(
                "INSERT INTO eventlog_event (run_id, seq, type, schema_version, payload, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        run.id,
                        r.seq,
                        type(r.event).__name__,
                        r.event.schema_version,
                        json.dumps(event_to_payload(r.event)),
                        r.at,
                    )
                    for r in part
                ],
            )
        state = None
        for i in range(0, len(log), 25):
            state = fold(log[i : i + 25], state)
            cursor.execute(
                "INSERT INTO eventlog_checkpoint (run_id, seq, state) VALUES (%s, %s, %s)",
                [run.id, state.last_seq, json.dumps(state_to_json(state))],
            )
        RunSummaryProjection.write(cursor, run.id, state, Definition.from_json(body), log[-1].at)
    return str(run.id)


def timed(client, url: str, n: int) -> tuple[list[float], list[float]]:
    """Wall time and this process's CPU time per request (on a busy machine the wall time
    includes waiting for a core; the CPU time does not)."""
    for _ in range(5):  # warm
        assert client.get(url).status_code == 200, url
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        response = client.get(url)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        assert response.status_code == 200, url
    return wall, cpu


def figure(
    label: str, times: list[float] | tuple[list[float], list[float]], target_ms: float = 0
) -> None:
    wall, cpu = times if isinstance(times, tuple) else (times, None)
    p50, p95 = statistics.median(wall) * 1000, percentile(wall, 95) * 1000
    line = f"  {label:<50} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms"
    if cpu is not None:
        cpu50, cpu95 = statistics.median(cpu) * 1000, percentile(cpu, 95) * 1000
        line += f"  | CPU p50 {cpu50:6.2f} p95 {cpu95:6.2f}"
    if target_ms:
        line += f"  (target p95 < {target_ms:.0f} ms)"
    print(line)


def server_times(n: int) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from vectorbea.eventlog.models import RunSummary
    from vectorbea.runs import listing
    from vectorbea.workflows.models import Workflow

    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username="ada"))
    base = f"/w/{WORKSPACE}/runs/"
    workflow = Workflow.objects.filter(workspace__slug=WORKSPACE, name="Invoice check").get()
    grace = get_user_model().objects.get(username="grace")
    summaries = RunSummary.objects.filter(workspace__slug=WORKSPACE)
    deep = summaries.order_by("-updated_at", "-run_id")[20_000]
    cursor = listing.encode_cursor(deep, "updated_at")
    big = summaries.order_by("-last_seq").first()
    today = datetime.now(UTC).date()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Server time, Django test Client, warm, {n} requests each (50 runs a page); "
        f"load average {load} on {os.cpu_count()} CPUs:"
    )
    figure("run list, no filters", timed(client, base, n), 100)
    figure("run list, status = failed", timed(client, base + "?status=failed", n), 100)
    figure("run list, needs attention", timed(client, base + "?status=attention", n), 100)
    figure(
        "run list, workflow + started by + sort by start",
        timed(client, f"{base}?workflow={workflow.id}&started_by={grace.pk}&sort=-started", n),
        100,
    )
    figure(
        "run list, started in the last 3 days",
        timed(client, f"{base}?since={today - timedelta(days=3)}&until={today}", n),
        100,
    )
    figure(
        "run list, search input 'customer-4242'", timed(client, base + "?q=customer-4242", n), 100
    )
    figure(
        "run list, search run id prefix",
        timed(client, base + f"?q={str(deep.run_id)[:6]}", n),
        100,
    )
    figure(
        "run list, page 401 (keyset cursor)",
        timed(client, f"{base}?cursor={cursor}", n),
        100,
    )
    page = f"{base}{big.run_id}/"
    figure(f"run page, {big.last_seq:,}-event run, first page", timed(client, page, n), 300)
    figure(
        "  same, failures only",
        timed(client, page + "?failures=1", n),
        300,
    )
    figure(
        "  its next 200 events (load more)",
        timed(client, f"{page}events/?after=5000&upto={big.last_seq}", n),
        300,
    )
    figure(
        "  time travel to event 7,777",
        timed(client, f"{page}as-of/?seq=7777", n),
        300,
    )


def browser_latency(events: int) -> None:
    """Commit of an appended event to its row in the DOM (a MutationObserver's clock)."""
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain
    # blocking calls between its calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    from vectorbea.engine import RunPaused, RunResumed
    from vectorbea.eventlog import store
    from vectorbea.runs.commands import start_run
    from vectorbea.workflows.models import Workflow

    sys.path.insert(0, str(ROOT))
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    workflow = Workflow.objects.get(workspace__slug=WORKSPACE, name="Support triage")
    from django.contrib.auth import get_user_model

    run = start_run(
        workflow, {"customer": "live"}, started_by=get_user_model().objects.get(username="ada")
    )
    port = free_port()
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    daphne = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("daphne")),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "vectorbea.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    latencies = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(base_url=f"http://127.0.0.1:{port}")
            for _ in range(100):
                try:
                    page.goto("/login/")
                    break
                except Exception:
                    time.sleep(0.1)
            page.get_by_label("Username").fill("ada")
            page.get_by_label("Password").fill("bench")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/w/**")
            page.goto(f"/w/{WORKSPACE}/runs/{run.id}/")
            page.wait_for_function("() => window.htmx && document.querySelector('#event-2')")
            page.evaluate(
                """() => {
                  window.__seen = {};
                  new MutationObserver(() => {
                    const at = performance.timeOrigin + performance.now();
                    document.querySelectorAll('#timeline [data-seq]').forEach(row => {
                      if (!(row.dataset.seq in window.__seen)) window.__seen[row.dataset.seq] = at;
                    });
                  }).observe(document.getElementById('timeline'), {childList: true});
                }"""
            )
            time.sleep(1.0)  # the socket is open and has said its last seq
            committed = {}
            for _ in range(events):
                loaded = store.load(run.id)
                event = RunPaused("ada", "") if not loaded.state.paused else RunResumed("ada")
                appended = store.append(
                    run.id,
                    loaded.state,
                    lambda s, now, e=event: [e],
                    loaded.definition,
                    now=loaded.clock.now(),
                )
                committed[appended.events[-1].seq] = time.time() * 1000
                time.sleep(0.1)
            last = max(committed)
            page.wait_for_function(f"() => window.__seen['{last}'] !== undefined", timeout=10_000)
            seen = page.evaluate("() => window.__seen")
            latencies = [(seen[str(seq)] - at) / 1000 for seq, at in committed.items()]
            browser.close()
    finally:
        os.killpg(daphne.pid, signal.SIGTERM)
        daphne.wait(timeout=15)
    print(f"Event commit -> row in the browser's DOM, {len(latencies)} events, 1 every 100 ms:")
    figure("append -> websocket -> htmx swap", latencies, 150)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    args = parser.parse_args()
    if args.fresh:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    setup_django()
    seed()
    server_times(args.requests)
    browser_latency(args.events)


if __name__ == "__main__":
    main()
