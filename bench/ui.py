"""UI benchmark: the run list and a 10,000-event run page at scale, and how long an appended
event takes to reach a browser. Prints figures; asserts nothing.

    .venv/bin/python bench/ui.py [--runs 100000] [--big-run 10000] [--requests 200]
                                 [--events 50] [--fresh] [--smoke]

Seeds (once) 100,000 runs and ~2,000,000 events into the bench database (vectorbea_bench):
the runs in bulk by bench/seed.py, whose rows are first checked against what the engine's
own append writes for the same events (the bench stops if they differ), and one run of
10,000 events through the engine's append itself. Server times use Django's test Client in
this process, warm. The browser figure uses a daphne subprocess and Chromium (Playwright)
against the same database and Redis db 15.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import BENCH_DB, ENV, ROOT, arguments, header, percentile, setup_django

WORKSPACE = "bench-ui"
USERS = ("ada", "grace", "linus", "margaret", "ken")
STEP_NAMES = ("Fetch ticket", "Classify", "Summarise", "Draft reply", "Post reply")
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


def seeded_runs() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM eventlog_run r JOIN accounts_workspace w "
            "ON w.id = r.workspace_id WHERE w.slug = %s",
            [WORKSPACE],
        )
        return cursor.fetchone()[0]


def seed(runs: int, big_events: int) -> None:
    """`runs` runs of the kinds in templates() and one run of `big_events` events, unless
    the bench database holds them already. The runs are written in bulk by bench/seed.py,
    which is first checked against the engine's own append (stopping the bench if they
    differ); the big run goes through the engine's append itself."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from seed import SeedRun, run_log, write_runs

    from vectorbea.accounts.models import Membership, Role, Workspace
    from vectorbea.engine import RunStarted
    from vectorbea.engine.graph import Definition
    from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

    existing = seeded_runs()
    if existing >= runs:
        print(f"Bench data already seeded: {existing:,} runs (use --fresh to start over).")
        check_seed()
        return
    if existing:
        raise SystemExit(
            f"The bench database holds {existing:,} runs, fewer than the {runs:,} asked for: "
            "run with --fresh to seed it again."
        )
    started = time.perf_counter()
    workspace, _ = Workspace.objects.get_or_create(slug=WORKSPACE, defaults={"name": "Bench UI"})
    users = []
    password = make_password("bench")  # hashed once: a hash takes about a second
    for name in USERS:
        user, _ = get_user_model().objects.get_or_create(username=name)
        user.password = password
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
    check_seed()
    parsed = Definition.from_json(definition())
    kinds = templates()
    slots = [kind for kind, (share, _) in kinds.items() for _ in range(share)]
    now = datetime.now(UTC)

    def run(n: int) -> "SeedRun":
        workflow, version = workflows[n % len(workflows)]
        user = users[n % len(users)]
        begin = RunStarted(
            str(workflow.id),
            str(version.id),
            {"customer": f"customer-{n}", "ticket": n},
            user.username,
        )
        log = run_log(now - timedelta(seconds=26 * n), [begin, *kinds[slots[n % len(slots)]][1]], 2)
        return SeedRun(uuid.uuid4(), workspace.id, workflow.id, version.id, user.pk, parsed, log)

    chunk = 5_000
    with transaction.atomic():
        for first in range(1, runs, chunk):
            write_runs(run(n) for n in range(first, min(runs, first + chunk)))
    big = seed_big_run(workspace, users[0], big_events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM eventlog_event")
        events = cursor.fetchone()[0]
    print(
        f"Seeded {seeded_runs():,} runs and {events:,} events (incl. run {big} with "
        f"{big_events:,}) in {time.perf_counter() - started:.0f} s"
    )


def check_seed() -> None:
    """One run of each kind written by the bulk writer and by the engine's append must be
    the same rows (bench/seed.py); stops the bench if not."""
    from django.contrib.auth import get_user_model
    from seed import SeedDiffers, SeedRun, check_against_append, run_log

    from vectorbea.engine import RunStarted
    from vectorbea.engine.graph import Definition
    from vectorbea.workflows.models import Workflow

    workflow = Workflow.objects.filter(workspace__slug=WORKSPACE).order_by("created_at").first()
    version = workflow.latest_version()
    user = get_user_model().objects.get(username=USERS[0])
    begin = RunStarted(str(workflow.id), str(version.id), {"customer": "check"}, user.username)
    start = datetime.now(UTC) - timedelta(days=1)
    runs = [
        SeedRun(
            uuid.uuid4(),
            workflow.workspace_id,
            workflow.id,
            version.id,
            user.pk,
            Definition.from_json(version.definition),
            run_log(start, [begin, *events], 2),
        )
        for _, events in templates().values()
    ]
    try:
        check_against_append(runs)
    except SeedDiffers as exc:
        raise SystemExit(f"bench/seed.py no longer writes what the engine writes: {exc}") from exc


def big_run_appends(begin, count: int) -> list[list]:
    """The events of a run of about `count` events whose step is retried thousands of
    times, grouped as the engine appends them: the start with its first step, a step's
    outcome with what follows it, the scheduler's retry."""
    from vectorbea.engine import RetryScheduled, StepFailed, StepStarted

    appends = [[begin, StepStarted("s0", 1)], [*ok("s0")[1:], StepStarted("s1", 1)]]
    total, attempt = 4, 1
    while total + 3 <= count:
        appends += [
            [
                StepFailed("s1", attempt, "transient", f"timeout #{attempt}"),
                RetryScheduled("s1", attempt + 1, "2026-01-01T00:00:30+00:00", 1.0, "transient"),
            ],
            [StepStarted("s1", attempt + 1)],
        ]
        total, attempt = total + 3, attempt + 1
    return appends


def seed_big_run(workspace, user, count: int) -> str:
    """One run of about `count` events (a step retried thousands of times), written by the
    engine's own append, grouped as a worker and the scheduler would."""
    from django.db import transaction
    from seed import SeedRun, append_as_engine, run_log

    from vectorbea.engine import RunStarted
    from vectorbea.engine.graph import Definition
    from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

    body = definition(max_attempts=10_000)
    workflow = Workflow.objects.create(workspace=workspace, name="Stubborn", draft=body)
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, definition=body, content_hash=content_hash(body)
    )
    begin = RunStarted(str(workflow.id), str(version.id), {"customer": "big"}, user.username)
    appends = big_run_appends(begin, count)
    events = [event for group in appends for event in group]
    run = SeedRun(
        uuid.uuid4(),
        workspace.id,
        workflow.id,
        version.id,
        user.pk,
        Definition.from_json(body),
        run_log(datetime.now(UTC) - timedelta(hours=3), events, 1),
    )
    with transaction.atomic():
        append_as_engine(run, [len(group) for group in appends])
    return str(run.id)


def timed(client, url: str, n: int) -> tuple[list[float], list[float]]:
    """Wall time and this process's CPU time per request (on a busy machine the wall time
    includes waiting for a core; the CPU time does not)."""
    for _ in range(min(5, n)):  # warm
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
    depth = min(20_000, summaries.count() // 5)  # page 401 at 100,000 runs
    deep = summaries.order_by("-updated_at", "-run_id")[depth]
    cursor = listing.encode_cursor(deep, "updated_at")
    big = summaries.order_by("-last_seq").first()
    middle, travel = big.last_seq // 2, big.last_seq * 7777 // 10_000
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
        f"run list, page {depth // 50 + 1} (keyset cursor)",
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
        timed(client, f"{page}events/?after={middle}&upto={big.last_seq}", n),
        300,
    )
    figure(
        f"  time travel to event {travel:,}",
        timed(client, f"{page}as-of/?seq={travel}", n),
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
    parser.add_argument("--runs", type=int, default=100_000, help="runs to seed")
    parser.add_argument("--big-run", type=int, default=10_000, help="events of the big run")
    parser.add_argument("--requests", type=int, default=200, help="per figure")
    parser.add_argument("--events", type=int, default=50, help="appended for the browser")
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    args = arguments(parser, smoke={"runs": 300, "big_run": 400, "requests": 3, "events": 3})
    if args.fresh:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    setup_django()
    header("bench/ui.py", args.floor)
    seed(args.runs, args.big_run)
    server_times(args.requests)
    browser_latency(args.events)


if __name__ == "__main__":
    main()
