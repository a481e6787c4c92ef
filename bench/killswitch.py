"""Kill switch benchmark: how fast "stop everything" stops 20 busy runs on 2 worker
processes. Prints figures; asserts nothing.

    .venv/bin/python bench/killswitch.py [--rounds 7] [--runs 20] [--settle 3] [--smoke]

Per round: 20 runs of 30 steps (each step sleeps 0.2 s) are going; the switch is thrown.
- "switch": how long stop_everything takes to return (every run paused, its in-flight
  attempts interrupted);
- "last start": how long after the switch the last STEP_STARTED anywhere was recorded
  (0 when none was: nothing started after the switch);
- "stop latency": the later of the two, i.e. when nothing new can start anywhere.
Uses its own database (vectorbea_bench) and Redis db 15 (see bench/common.py).
"""

import argparse
import os
import statistics
import time
import uuid

from common import arguments, header, percentile, setup_django, start_workers, stop


def one_round(workspace, workflow, runs: int, settle: float) -> tuple[float, float]:
    from django.db import connection

    from vectorbea.budgets import killswitch
    from vectorbea.runs.commands import start_run

    ids = [start_run(workflow, {}).id for _ in range(runs)]
    while True:  # every run busy
        with connection.cursor() as c:
            c.execute(
                "SELECT count(DISTINCT run_id) FROM eventlog_event "
                "WHERE run_id = ANY(%s) AND type = 'StepStarted' AND seq > 3",
                [ids],
            )
            if c.fetchone()[0] == runs:
                break
        time.sleep(0.02)
    with connection.cursor() as c:
        c.execute("SELECT clock_timestamp()")
        thrown = c.fetchone()[0]
    t = time.perf_counter()
    killswitch.stop_everything(workspace.id, actor="bench", reason="bench")
    switch = time.perf_counter() - t
    time.sleep(settle)  # anything still to start would have started by now
    with connection.cursor() as c:
        c.execute(
            "SELECT max(created_at) FROM eventlog_event "
            "WHERE run_id = ANY(%s) AND type = 'StepStarted'",
            [ids],
        )
        last = c.fetchone()[0]
    last_start = max(0.0, (last - thrown).total_seconds())
    killswitch.allow_again(workspace.id, actor="bench")
    from vectorbea.runs.commands import cancel_run

    for run_id in ids:
        cancel_run(run_id, actor="bench")
    return switch, last_start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20, help="busy runs per round")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the switch to look for starts"
    )
    args = arguments(parser, smoke={"rounds": 1, "runs": 4, "settle": 1.0})
    os.environ["VECTORBEA_TOOL_MODULES"] = "tests.support.tools"
    setup_django()
    header("bench/killswitch.py", args.floor)
    from django.db import connection

    from tests.support.tools import CREATE_TABLE
    from tests.support.workflows import chain, publish
    from vectorbea.accounts.models import Workspace

    with connection.cursor() as c:
        c.execute(CREATE_TABLE)
    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    definition = chain(30, "tool", {"tool": "record", "args": {"sleep": 0.2}})
    workflow = publish(workspace, definition, name=f"kill-{uuid.uuid4().hex[:6]}")
    workers = start_workers(2, threads=10)
    try:
        rounds = [
            one_round(workspace, workflow, args.runs, args.settle) for _ in range(args.rounds)
        ]
    finally:
        stop(workers)
    switch = [s for s, _ in rounds]
    last = [s for _, s in rounds]
    latency = [max(pair) for pair in rounds]
    print(f"{args.runs} busy runs on 2 worker processes, {args.rounds} rounds:")
    print(
        f"  switch returns (all paused):   p50 {statistics.median(switch):.3f} s, "
        f"p95 {percentile(switch, 95):.3f} s"
    )
    print(
        f"  last STEP_STARTED after it:    p50 {statistics.median(last):.3f} s, "
        f"max {max(last):.3f} s"
    )
    print(
        f"  stop latency:                  p50 {statistics.median(latency):.3f} s, "
        f"p95 {percentile(latency, 95):.3f} s (target p95 < 2 s)"
    )


if __name__ == "__main__":
    main()
