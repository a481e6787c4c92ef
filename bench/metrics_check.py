"""Do /metrics' counters agree with the event log after a benchmark run?

Runs ten-step runs through real worker processes (most complete; some retry a transient
failure; some stop for attention; some fail), then scrapes the metrics as /metrics does and
compares every counter with the same figure counted from eventlog_event. Prints the table
and whether every counter matched (exit status 1 if not), then what the metrics hook costs
per append.

    .venv/bin/python bench/metrics_check.py [--runs 500] [--processes 2] [--hook-runs 2000]
                                            [--smoke]

Uses its own database (vectorbea_bench_metrics), Redis db 14 (or VECTORBEA_BENCH_DB,
VECTORBEA_BENCH_REDIS) and a fresh metrics directory.
"""

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("VECTORBEA_BENCH_DB", "vectorbea_bench_metrics")
os.environ.setdefault("VECTORBEA_BENCH_REDIS", "redis://127.0.0.1:6379/14")
os.environ["VECTORBEA_BENCH_METRICS_DIR"] = tempfile.mkdtemp(prefix="vectorbea-bench-metrics-")
os.environ["VECTORBEA_TOOL_MODULES"] = "tests.support.tools"  # fail_until, for the workers

from common import ENV, ROOT, arguments, header, setup_django, start_workers, stop

# Removed at exit after everything else: exit handlers run last-registered first, and this
# process's metrics tally (registered when Django starts) writes its last counts at exit.
atexit.register(shutil.rmtree, ENV["VECTORBEA_METRICS_DIR"], ignore_errors=True)

STEPS = 10
FINISHED = ("completed", "failed", "cancelled", "needs_attention")


def workflows(workspace, runs: int) -> list[tuple]:
    """(workflow, how many runs): 90% plain, and 4% retried, 4% stopped, 2% failed."""
    from tests.support.workflows import FAST_RETRY, chain, publish

    def with_failing_step(args: dict, **step) -> dict:
        definition = chain(STEPS)
        definition["steps"][STEPS // 2] = {
            "id": f"s{STEPS // 2}",
            "kind": "tool",
            "config": {"tool": "fail_until", "args": args},
            "retry": {**FAST_RETRY, "maximum_attempts": 2},
            **step,
        }
        return definition

    name = uuid.uuid4().hex[:6]
    retried = publish(workspace, with_failing_step({"attempt": 2}), f"retried-{name}")
    stopped = publish(
        workspace, with_failing_step({"attempt": 99, "error_class": "permanent"}), f"stop-{name}"
    )
    failed = publish(
        workspace, with_failing_step({"attempt": 99}, on_failure="fail"), f"failed-{name}"
    )
    few = runs // 25
    return [
        (publish(workspace, chain(STEPS), f"plain-{name}"), runs - 2 * few - few // 2),
        (retried, few),
        (stopped, few),
        (failed, few // 2),
    ]


def start_scheduler() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "scheduler"],
        cwd=ROOT,
        env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_all(plan: list[tuple], starters: int = 4) -> tuple[list, float]:
    from django.db import connection

    from vectorbea.runs.commands import start_run

    todo = [workflow for workflow, count in plan for _ in range(count)]
    shares = [todo[first::starters] for first in range(starters)]

    def start_some(share: list) -> list:
        try:
            return [start_run(workflow, {}).id for workflow in share]
        finally:
            connection.close()

    t = time.perf_counter()
    with ThreadPoolExecutor(starters) as pool:
        ids = [run_id for started in pool.map(start_some, shares) for run_id in started]
    with connection.cursor() as c:
        while True:
            c.execute(
                "SELECT count(*) FROM eventlog_runsummary WHERE run_id = ANY(%s) "
                "AND status = ANY(%s)",
                [ids, list(FINISHED)],
            )
            if c.fetchone()[0] == len(ids):
                break
            time.sleep(0.05)
    return ids, time.perf_counter() - t


def compare(run_ids: list) -> bool:
    """The counters of every process's metrics files against the log of this bench's runs
    (the metrics directory is new: nothing else was counted in it)."""
    from tests.metrics.support import by, counted, log_counts, log_step_seconds, parse, settled
    from vectorbea.metrics.views import exposition

    expected = log_counts(run_ids)
    samples = settled(lambda: parse(exposition().decode()), {}, expected)
    scraped = counted(samples)
    # Every outcome here follows a recorded start, so each is one latency observation.
    duration = "vectorbea_step_duration_seconds_count"
    scraped[duration] = by(samples, duration, "kind", "outcome")
    expected[duration] = Counter(
        {
            (kind, "completed"): n
            for (kind,), n in expected["vectorbea_steps_completed_total"].items()
        }
    )
    for (kind, _), n in expected["vectorbea_steps_failed_total"].items():
        expected[duration][(kind, "failed")] += n
    rows, matched = [], True
    for name, want in expected.items():
        for labels in sorted(want.keys() | scraped[name].keys()):
            got, logged = scraped[name].get(labels, 0), want.get(labels, 0)
            matched &= got == logged
            rows.append((name, ",".join(labels), f"{got:g}", f"{logged:g}", got == logged))
    width = max(len(r[0]) for r in rows)
    labels_width = max(len(r[1]) for r in rows)
    print(f"{'metric':<{width}}  {'labels':<{labels_width}}  {'/metrics':>9}  {'log':>9}  match")
    for name, labels, got, logged, ok in rows:
        print(
            f"{name:<{width}}  {labels:<{labels_width}}  {got:>9}  {logged:>9}  "
            f"{'yes' if ok else 'NO'}"
        )
    seconds = by(samples, "vectorbea_step_duration_seconds_sum")[()]
    logged_seconds = log_step_seconds(run_ids)
    print(
        f"vectorbea_step_duration_seconds_sum {seconds:.3f} s, from the log {logged_seconds:.3f} s"
    )
    matched &= abs(seconds - logged_seconds) < 1e-3
    mismatched = sum(1 for row in rows if not row[4])
    print(
        f"Every counter matched the event log ({len(rows)} series)."
        if matched
        else f"MISMATCH: {mismatched} of {len(rows)} series differ from the event log."
    )
    return matched


def hook_cost(version_id: uuid.UUID, workspace_id: uuid.UUID, runs: int = 2000) -> None:
    """count_appended on the appends of whole 10-step runs as a worker records them: the
    run's start (RunStarted, StepStarted), then each step boundary (StepCompleted of one
    step and StepStarted of the next), then the last step with RunCompleted. Each append
    comes with the run's state before it, as the store hands it."""
    from datetime import UTC, datetime, timedelta

    from vectorbea.engine import (
        Recorded,
        RunCompleted,
        RunStarted,
        RunState,
        StepCompleted,
        StepStarted,
        fold,
    )
    from vectorbea.eventlog.hooks import Change
    from vectorbea.eventlog.store import definition_for
    from vectorbea.metrics.events import count_appended

    t0 = datetime.now(UTC)

    def at(seq: int) -> datetime:
        return t0 + timedelta(milliseconds=seq)

    appends = [[(1, RunStarted("w", str(version_id), {})), (2, StepStarted("s0", 1))]]
    for i in range(STEPS):
        seq = 3 + 2 * i
        after = StepStarted(f"s{i + 1}", 1) if i + 1 < STEPS else RunCompleted({})
        appends.append([(seq, StepCompleted(f"s{i}", 1, {})), (seq + 1, after)])
    batches = [[Recorded(seq, at(seq), event) for seq, event in batch] for batch in appends]
    states = [RunState.initial()]
    for batch in batches:
        states.append(fold(batch, states[-1]))
    definition = definition_for(version_id)
    changes = [
        Change(run_id, workspace_id, definition, before, after, tuple(batch), (), "")
        for run_id in (uuid.uuid4() for _ in range(runs))
        for batch, before, after in zip(batches, states[:-1], states[1:], strict=True)
    ]

    def all_runs() -> None:
        for change in changes:
            count_appended(change)

    all_runs()  # warm up: every labelled series exists
    # CPU time: on a busy machine the wall clock mostly measures the other processes.
    seconds = min(timeit.repeat(all_runs, number=1, repeat=5, timer=time.process_time))
    per_append = seconds / (runs * len(batches)) * 1e6
    print(
        f"Metrics hook per append (10-step runs, {runs * len(batches):,} appends): "
        f"{per_append:.1f} µs of CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--hook-runs", type=int, default=2000, help="runs for the hook's cost")
    args = arguments(parser, smoke={"runs": 50, "processes": 1, "hook_runs": 20})
    setup_django()
    header("bench/metrics_check.py", args.floor)
    from django.db import connection

    from tests.support.tools import CREATE_TABLE
    from vectorbea.accounts.models import Workspace

    with connection.cursor() as c:
        c.execute(CREATE_TABLE)  # where the tests' tools note their attempts
    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    plan = workflows(workspace, args.runs)

    workers = start_workers(args.processes, threads=8)
    scheduler = start_scheduler()
    try:
        ids, elapsed = run_all(plan)
    finally:
        stop(workers)
        stop(scheduler)
    print(
        f"{len(ids)} runs of {STEPS} steps on {args.processes} worker processes in "
        f"{elapsed:.1f} s: " + ", ".join(f"{count} {wf.name.split('-')[0]}" for wf, count in plan)
    )
    matched = compare(ids)
    hook_cost(plan[0][0].latest_version().id, workspace.id, args.hook_runs)
    sys.exit(0 if matched else 1)


if __name__ == "__main__":
    main()
