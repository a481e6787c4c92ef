"""Engine benchmark: what durability costs per step, against the raw floor of a durable
commit on this machine. Prints figures; asserts nothing.

    .venv/bin/python bench/engine.py [--runs 300] [--throughput-runs 2000] [--trials 3]
                                     [--processes 1 2] [--smoke]

Uses its own database (vectorbea_bench) and Redis db 15 (see bench/common.py).
"""

import argparse
import os
import statistics
import time
import uuid

from common import (
    Completions,
    arguments,
    header,
    ms,
    setup_django,
    start_workers,
    stop,
    summary,
    vacuum,
)

STEPS = 10


def ten_noops(workspace):
    from tests.support.workflows import chain, publish

    return publish(workspace, chain(STEPS), name=f"bench-{uuid.uuid4().hex[:6]}")


def write_transactions() -> int:
    """Transactions that wrote anything get a transaction id; read-only ones do not. The
    next id to be assigned, instance-wide: run on a quiet machine."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        return c.fetchone()[0]


def in_process_overhead(workflow, runs: int) -> tuple[list[float], list[float], float]:
    """Run each 10-step run inline in this process (no broker): engine cost per step
    (claiming the first step, then each step boundary), and the cost of starting a run."""
    from django.db import connection

    from vectorbea.eventlog.models import StepLease
    from vectorbea.runs.commands import start_run
    from workers import dispatch, runtime

    dispatch_step = dispatch.dispatch
    dispatch.dispatch = lambda *a: None  # this process runs the steps itself
    per_step, starts = [], []
    before = write_transactions()
    try:
        for _ in range(runs):
            t = time.perf_counter()
            run = start_run(workflow, {})
            starts.append(time.perf_counter() - t)
            lease = StepLease.objects.get(run=run)
            t = time.perf_counter()
            runtime.execute_step(run.id, lease.step_id, lease.attempt)
            per_step.append((time.perf_counter() - t) / STEPS)
    finally:
        dispatch.dispatch = dispatch_step
    after = write_transactions()
    connection.close()
    return per_step, starts, (after - before) / (runs * STEPS)


def one_at_a_time(workflow, done: Completions, runs: int, idle: float = 0.0) -> list[float]:
    """From start_run called to the run's completion committed, one run at a time (the
    next starts when the last has finished, after `idle` seconds)."""
    from vectorbea.runs.commands import start_run

    latencies = []
    for _ in range(runs):
        t = time.perf_counter()
        run = start_run(workflow, {})
        done.wait(run.id)
        latencies.append(time.perf_counter() - t)
        time.sleep(idle)
    return latencies


def quiet_start(workspace, done: Completions, runs: int) -> list[float]:
    """A one-step run started on a quiet system (workers idle for 1.5 s): from start_run to
    its step completed. Dramatiq's idle poll alone would add up to its worker timeout."""
    from tests.support.workflows import chain, publish

    workflow = publish(workspace, chain(1), name=f"bench-quiet-{uuid.uuid4().hex[:6]}")
    return one_at_a_time(workflow, done, runs, idle=1.5)


def throughput(workflow, done: "Completions", runs: int, starters: int = 4) -> float:
    """`runs` runs started at once by `starters` threads (all of them in flight together),
    until the last completes (told by NOTIFY: the bench spends no CPU watching)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from vectorbea.runs.commands import start_run

    def start_some(count: int) -> list:
        try:
            return [start_run(workflow, {}).id for _ in range(count)]
        finally:
            connection.close()

    t = time.perf_counter()
    share = [runs // starters + (1 if i < runs % starters else 0) for i in range(starters)]
    with ThreadPoolExecutor(starters) as pool:
        ids = [run_id for chunk in pool.map(start_some, share) for run_id in chunk]
    done.wait_all(ids)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300, help="runs in process")
    parser.add_argument("--throughput-runs", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=3, help="throughput trials (median)")
    parser.add_argument("--one-at-a-time", type=int, default=200, help="runs end to end")
    parser.add_argument("--quiet", type=int, default=20, help="runs started on a quiet system")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="worker processes, in turn"
    )
    args = arguments(
        parser,
        smoke={
            "runs": 5,
            "throughput_runs": 20,
            "trials": 1,
            "one_at_a_time": 4,
            "quiet": 1,
            "processes": [2],
        },
        floor=2000,
    )
    setup_django()
    floor = header("bench/engine.py", args.floor)
    from vectorbea.accounts.models import Workspace

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    workflow = ten_noops(workspace)

    print(f"Raw floor, one durable INSERT+COMMIT:        {summary(floor)}")
    per_step, starts, commits_per_step = in_process_overhead(workflow, args.runs)
    print(f"Starting a run (validate, insert, first append): {summary(starts)}")
    print(f"Engine per step (in process, {STEPS}-step run):   {summary(per_step)}")
    ratio = statistics.median(per_step) / statistics.median(floor)
    print(f"  = {ratio:.1f}x the floor (target: within 4x)")
    claims = 1 / STEPS  # each run's first step is claimed once (a commit that does not
    # wait for the WAL flush: a claim is not a step boundary)
    print(
        f"Durable commits per step:                    {commits_per_step - claims:.2f} "
        f"(the run's start and each step boundary; target about 1), plus {claims:.2f} for "
        f"claiming the first step: {commits_per_step:.2f} write transactions per step"
    )

    done = Completions()
    try:
        for phase, processes in enumerate(args.processes):
            vacuum()  # an earlier phase's trials left thousands of runs' dead rows
            workers = start_workers(processes)
            try:
                if phase == 0:
                    quiet = quiet_start(workspace, done, args.quiet)
                    print(f"First step of a run started on a quiet system: {summary(quiet)}")
                back_to_back = one_at_a_time(workflow, done, args.one_at_a_time)
                after_idle = one_at_a_time(
                    workflow, done, max(1, args.one_at_a_time // 2), idle=0.02
                )
                trials = []  # this VM's speed drifts by tens of percent: the median of a few
                for _ in range(args.trials):
                    before, roles = cpu_times(), cpu_by_role(workers.pid)
                    elapsed = throughput(workflow, done, args.throughput_runs)
                    spent = {
                        role: seconds - roles.get(role, 0.0)
                        for role, seconds in cpu_by_role(workers.pid).items()
                    }
                    trials.append((elapsed, cpu_busy(before, cpu_times()), spent))
            finally:
                stop(workers)
            steps = args.throughput_runs * STEPS
            elapsed, busy, spent = sorted(trials, key=lambda trial: trial[0])[len(trials) // 2]
            rates = ", ".join(f"{steps / e:,.0f}" for e, _, _ in trials)
            print(
                f"{processes} worker process(es): one {STEPS}-step run end to end "
                f"{summary(back_to_back)} (one after another), {summary(after_idle)} "
                f"(after 20 ms idle); {args.throughput_runs} runs in flight (4 starters): "
                f"median of {len(trials)} trials {elapsed:.2f} s = {steps / elapsed:,.0f} "
                f"steps/s, {args.throughput_runs / elapsed:,.0f} runs/s, CPU {busy:.0%} busy "
                f"(trials: {rates} steps/s)"
            )
            split = ", ".join(f"{role} {ms(seconds / steps)}" for role, seconds in spent.items())
            print(f"  CPU per step in that trial: {split}")
    finally:
        done.close()


def cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:]]


def cpu_by_role(workers_group: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the worker processes (the process group
    the bench started), Postgres (every postgres process: backends, WAL writer, ..., and
    through the postmaster's children's time, backends that have exited, like the
    starters') and this process (the starters)."""
    tick = os.sysconf("SC_CLK_TCK")
    processes = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        # after the command: state, ppid, pgrp, ..., utime, stime, cutime, cstime (12th-15th)
        fields = text[text.rindex(")") + 2 :].split()
        times = [int(value) / tick for value in fields[11:15]]
        processes.append((int(entry.name), int(fields[1]), int(fields[2]), comm, times))
    postgres = {pid for pid, _, _, comm, _ in processes if comm.startswith("postgres")}
    spent = {"workers": 0.0, "postgres": 0.0}
    for pid, parent, group, _, (user, system, children_user, children_system) in processes:
        if group == workers_group:
            spent["workers"] += user + system
        elif pid in postgres:
            spent["postgres"] += user + system
            if parent not in postgres:  # the postmaster: its exited children too
                spent["postgres"] += children_user + children_system
    own = os.times()
    spent["bench (starters)"] = own.user + own.system
    return spent


def cpu_busy(before: list[int], after: list[int]) -> float:
    """The machine's CPU use between two readings (all cores; idle and iowait are idle)."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return 1 - (spent[3] + spent[4]) / sum(spent)


if __name__ == "__main__":
    main()
