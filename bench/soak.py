"""Soak benchmark: thousands of short runs through two worker processes while one of them is
SIGKILLed and restarted every few seconds. Checks the promise, prints figures, and exits
non-zero when a check fails.

    .venv/bin/python bench/soak.py [--runs 10000] [--steps 10] [--kill-every 20]
                                   [--kills 0] [--lease-seconds 5] [--in-flight 200]
                                   [--timeout 300] [--smoke]

What runs:
- two `dramatiq workers.actors -p 1 -t 8` process groups ("a" and "b") and the scheduler
  (`manage.py scheduler`: expired leases → worker_lost → retry, due runs woken);
- `--runs` runs of `--steps` no-op steps, started by 4 threads with `start_run` as a steady
  stream that keeps at most `--in-flight` runs unfinished (0: all of them up front);
- every `--kill-every` seconds one worker (a, b, a, ...) gets SIGKILL on its whole process
  group (the dramatiq supervisor and the worker process running the steps: the machine
  died) and a new one is started at once, until every run has finished.

Why a steady stream by default: a run whose first step waits in the queue holds an
*unclaimed* lease, and when that lease expires the scheduler sends the step again (it cannot
tell a lost message from a long queue). A queue longer than the lease would make the soak
measure that re-sending, not recovery; the window keeps the queue well under the lease.
`--in-flight 0` lifts it (on 2 cores starting a run costs about as much CPU as running its
steps, so even then the queue stays short).

Recovery of a kill is measured from the event log: the attempts the killed worker held
(its leases, read just after the kill) must each get a StepFailed worker_lost and then a
StepCompleted of a later attempt; "recovered" is the DB time of the last of those
StepCompleted minus the DB time of the SIGKILL. The throughput dip is when a sliding 1 s
window of StepCompleted is back to >= 80% of the 5 s before the kill.

Uses its own database (vectorbea_bench_soak, or VECTORBEA_BENCH_SOAK_DB: dropped and
created again at each start) and Redis db 13 (or VECTORBEA_BENCH_REDIS; flushed). Worker
and scheduler logs (and metrics files) go to a temporary directory, printed.
"""

import argparse
import bisect
import functools
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The soak drops its database at each start: a name of its own, never VECTORBEA_BENCH_DB
# (which names the other benches' database).
SOAK_DB = os.environ.get("VECTORBEA_BENCH_SOAK_DB", "vectorbea_bench_soak")
SOAK_REDIS = os.environ.get("VECTORBEA_BENCH_REDIS", "redis://127.0.0.1:6379/13")
# bench/common.py reads these when it is imported: set them first.
os.environ["VECTORBEA_BENCH_DB"] = SOAK_DB
os.environ["VECTORBEA_BENCH_REDIS"] = SOAK_REDIS

from common import (  # noqa: E402
    ENV,
    ROOT,
    arguments,
    booted,
    group_pids,
    header,
    percentile,
    setup_django,
)

HOST = socket.gethostname()
STARTERS = 4
WORKER_THREADS = 8
# Enough attempts that a step lost to a kill (or two) never fails its run; a short backoff
# so that recovery time is the lease, not the backoff.
RETRY = {
    "maximum_attempts": 10,
    "initial_interval_seconds": 0.1,
    "backoff_coefficient": 1.0,
    "maximum_interval_seconds": 0.1,
}
TERMINAL = ("completed", "failed", "cancelled")
BASELINE_SECONDS = 5.0  # throughput before a kill is measured over this long
DIP_THRESHOLD = 0.8  # "back" = a 1 s window at >= 80% of that


# Processes -------------------------------------------------------------------------------


class Group:
    """A process group this bench started: a dramatiq supervisor and its worker process,
    or the scheduler."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.boot_seconds: float | None = None
        self.crashed = False  # exited without being killed

    def pids(self) -> list[int]:
        return group_pids(self.popen.pid)

    def kill(self) -> None:
        """SIGKILL the whole group and wait until none of it is left."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:  # the worker child, reparented
            time.sleep(0.01)


class Processes:
    def __init__(self, lease_seconds: float, logs: Path) -> None:
        self.env = {
            **os.environ,
            **ENV,
            "VECTORBEA_LEASE_SECONDS": str(lease_seconds),
            "dramatiq_worker_timeout": "100",
            "PYTHONPATH": str(ROOT),
        }
        self.logs = logs
        self.groups: list[Group] = []
        self.generation: dict[str, int] = {}

    def _spawn(self, name: str, argv: list[str]) -> Group:
        self.generation[name] = self.generation.get(name, 0) + 1
        log = self.logs / f"{name}-{self.generation[name]}.log"
        group = Group(name, argv, self.env, log)
        self.groups.append(group)
        return group

    def worker(self, name: str) -> Group:
        dramatiq = str(Path(sys.executable).parent / "dramatiq")
        argv = [dramatiq, "workers.actors", "-p", "1", "-t", str(WORKER_THREADS)]
        return self._spawn(name, argv)

    def scheduler(self) -> Group:
        return self._spawn("scheduler", [sys.executable, "manage.py", "scheduler"])

    def kill_all(self) -> None:
        for group in self.groups:
            if group.popen.poll() is None or group.pids():
                group.kill()


@functools.cache
def redis_client() -> Any:
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def worker_booted(group: Group) -> bool:
    """The worker process announced itself in Redis (after_worker_boot): it takes messages."""
    return booted(group.popen.pid) > 0


# Starting runs ---------------------------------------------------------------------------


class Producer:
    """STARTERS threads calling start_run, keeping at most `in_flight` runs unfinished
    (0: no limit, every run started as fast as possible)."""

    def __init__(self, workflow: Any, total: int, in_flight: int) -> None:
        self.workflow = workflow
        self.total = total
        self.in_flight = in_flight
        self.claimed = 0
        self.started = 0
        self.terminal = 0
        self.errors: list[BaseException] = []
        self.stopping = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"starter-{i}", daemon=True)
            for i in range(STARTERS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self.stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def finished_runs(self, terminal: int) -> None:
        with self._cond:
            self.terminal = terminal
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self.started == self.total

    def _slot(self) -> bool:
        with self._cond:
            while not self.stopping and self.claimed < self.total:
                if not self.in_flight or self.claimed - self.terminal < self.in_flight:
                    self.claimed += 1
                    return True
                self._cond.wait(0.1)
            return False

    def _work(self) -> None:
        from django.db import connection

        from vectorbea.runs.commands import start_run

        try:
            while self._slot():
                start_run(self.workflow, {})
                with self._cond:
                    self.started += 1
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connection.close()


# The soak ----------------------------------------------------------------------------------

Key = tuple[Any, str, int]  # (run_id, step_id, attempt)


@dataclass
class Kill:
    victim: str
    at: float  # DB clock (epoch seconds) just before the SIGKILL
    mono: float
    workers: list[str]  # worker ids ("host:pid") of the killed group
    restarted: Group
    other_up: bool  # the other worker had booted: something could still run steps
    held: list[Key] | None = None  # the attempts the killed worker held, read after the kill


@dataclass
class Sample:
    seconds: float
    in_flight: int
    waiting: int  # messages waiting in the Redis queues
    expired_unclaimed: int  # queued first steps whose (unclaimed) lease already expired


@dataclass
class Soak:
    kills: list[Kill] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    # Processes that exited without being killed (a worker that failed to boot, say).
    exits: list[str] = field(default_factory=list)
    timed_out: bool = False
    cpu_seconds: float = 0.0  # this process's: starting the runs (and watching)


def db_clock() -> float:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
        return c.fetchone()[0]


def finished_runs() -> int:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            "SELECT count(*) FROM eventlog_runsummary WHERE status = ANY(%s)", [list(TERMINAL)]
        )
        return c.fetchone()[0]


def leases_held_by(workers: list[str]) -> list[Key]:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            "SELECT run_id, step_id, attempt FROM eventlog_steplease WHERE worker = ANY(%s)",
            [workers],
        )
        return [tuple(row) for row in c.fetchall()]


def sample(started: float, producer: Producer, terminal: int) -> Sample:
    from django.conf import settings
    from django.db import connection

    client = redis_client()
    ns = f"{settings.REDIS_PREFIX}:dramatiq"
    waiting = sum(client.llen(f"{ns}:{queue}") for queue in ("steps", "runs"))
    with connection.cursor() as c:
        c.execute(
            "SELECT count(*) FROM eventlog_steplease WHERE worker = '' AND expires_at <= now()"
        )
        expired = c.fetchone()[0]
    return Sample(time.monotonic() - started, producer.claimed - terminal, waiting, expired)


def kill_and_restart(processes: Processes, workers: list[Group], index: int) -> Kill:
    group, other = workers[index], workers[1 - index]
    ids = [f"{HOST}:{pid}" for pid in group.pids()]
    other_up = other.boot_seconds is not None or worker_booted(other)
    at, mono = db_clock(), time.monotonic()
    group.kill()
    workers[index] = processes.worker(group.name)  # a crash, then the service restarts it
    return Kill(group.name, at, mono, ids, workers[index], other_up)


def soak(args: argparse.Namespace, workflow: Any, processes: Processes) -> Soak:
    result = Soak()
    scheduler = processes.scheduler()
    workers = [processes.worker("a"), processes.worker("b")]
    deadline = time.monotonic() + 60
    while not all(worker_booted(w) for w in workers):
        if time.monotonic() > deadline:
            raise SystemExit(f"Workers did not start; see {processes.logs}")
        time.sleep(0.1)
    producer = Producer(workflow, args.runs, args.in_flight)
    started = time.monotonic()
    next_kill = started + args.kill_every if args.kill_every > 0 else float("inf")
    next_sample = started
    # The killed worker's leases are read once it is surely gone and well before they can
    # expire: nothing but the scheduler touches them in between.
    read_held_after = min(1.0, args.lease_seconds / 2)
    victim = 0
    cpu = time.process_time()
    producer.start()
    try:
        while True:
            now = time.monotonic()
            terminal = finished_runs()
            producer.finished_runs(terminal)
            if producer.errors:
                raise producer.errors[0]
            if now >= next_sample:
                result.samples.append(sample(started, producer, terminal))
                next_sample += 1.0
            for kill in result.kills:
                if kill.held is None and now >= kill.mono + read_held_after:
                    kill.held = leases_held_by(kill.workers)
            for i, worker in enumerate(workers):
                if worker.popen.poll() is not None:  # died by itself: say so, start another
                    worker.crashed = True
                    result.exits.append(f"{worker.log} (exit code {worker.popen.returncode})")
                    worker.kill()
                    workers[i] = processes.worker(worker.name)
                elif worker.boot_seconds is None and worker_booted(worker):
                    worker.boot_seconds = time.monotonic() - worker.started
            if scheduler.popen.poll() is not None:
                result.exits.append(f"{scheduler.log} (exit code {scheduler.popen.returncode})")
                scheduler = processes.scheduler()
            if producer.done and terminal >= args.runs:
                break
            if now - started > args.timeout:
                result.timed_out = True
                break
            if now >= next_kill and not 0 < args.kills <= len(result.kills):
                result.kills.append(kill_and_restart(processes, workers, victim))
                victim = 1 - victim
                next_kill += args.kill_every
            time.sleep(0.05)
    finally:
        producer.stop()
    result.cpu_seconds = time.process_time() - cpu
    for kill in result.kills:
        if kill.held is None:
            kill.held = leases_held_by(kill.workers)
    return result


# Figures and checks ----------------------------------------------------------------------


def count_between(times: list[float], start: float, end: float) -> int:
    """How many of the sorted `times` fall in [start, end)."""
    return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)


def throughput_after(
    times: list[float], at: float, baseline: float, span: float, limit: float = 30.0
) -> tuple[float | None, float]:
    """After a kill at `at`, with `baseline` steps/s before it: the seconds until a 1 s
    window of `times` (sliding by 0.1 s) holds >= DIP_THRESHOLD × baseline again (None if not
    within `limit`), and the lowest 1 s window starting in the next `span` seconds, as a
    fraction of baseline."""

    def rate(offset: float) -> float:
        return count_between(times, at + offset, at + offset + 1.0) / baseline

    offsets = [i / 10 for i in range(int(limit * 10) + 1)]
    back = next((o for o in offsets if rate(o) >= DIP_THRESHOLD), None)
    lowest = min(rate(o) for o in offsets if o <= max(span - 1.0, 0.0))
    return back, lowest


def dist(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {statistics.median(values):.2f} s, p95 {percentile(values, 95):.2f} s, "
        f"max {max(values):.2f} s"
    )


def query(sql: str, params: list[Any] | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(sql, params or [])
        return c.fetchall()


def redis_figures() -> tuple[int, int, int]:
    """Dead letters (*.XQ), messages still queued, and messages left in dead workers'
    ack sets (Dramatiq re-queues those only after its heartbeat timeout)."""
    from django.conf import settings

    client = redis_client()
    ns = f"{settings.REDIS_PREFIX}:dramatiq"
    dead = sum(client.zcard(key) for key in client.scan_iter(f"{ns}:*.XQ"))
    queued = sum(client.llen(f"{ns}:{queue}") for queue in ("steps", "runs", "llm"))
    acked = sum(client.scard(key) for key in client.scan_iter(f"{ns}:__acks__.*"))
    return dead, queued, acked


def log_lines(logs: Path) -> tuple[int, int]:
    """Tracebacks and ERROR/CRITICAL lines in the workers' and scheduler's logs."""
    tracebacks = errors = 0
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            tracebacks += line.startswith("Traceback")
            errors += " ERROR " in line or " CRITICAL " in line
    return tracebacks, errors


def report(args: argparse.Namespace, result: Soak, logs: Path) -> bool:
    checks: list[tuple[bool, str]] = []
    runs, steps = args.runs, args.steps

    statuses = dict(query("SELECT status, count(*) FROM eventlog_runsummary GROUP BY 1"))
    total = query("SELECT count(*) FROM eventlog_run")[0][0]
    completed = statuses.get("completed", 0)
    summary = ", ".join(f"{status} {n:,}" for status, n in sorted(statuses.items()))
    terminal = sum(statuses.get(status, 0) for status in TERMINAL)
    done = total == runs and terminal == runs
    checks.append((done, f"all {runs:,} runs started and terminal ({summary})"))
    checks.append((completed == runs, f"all {runs:,} runs completed"))

    duplicates = query(
        "SELECT run_id, payload->>'step_id', count(*) FROM eventlog_event "
        "WHERE type = 'StepCompleted' GROUP BY 1, 2 HAVING count(*) > 1"
    )
    checks.append((not duplicates, f"duplicate StepCompleted: {len(duplicates)} (run, step)"))
    details = [f"duplicate: run {r[0]} step {r[1]} completed {r[2]} times" for r in duplicates[:5]]

    wrong = query(
        "SELECT s.run_id, count(e.seq) FROM eventlog_runsummary s LEFT JOIN eventlog_event e "
        "ON e.run_id = s.run_id AND e.type = 'StepCompleted' WHERE s.status = 'completed' "
        "GROUP BY 1 HAVING count(e.seq) <> %s",
        [steps],
    )
    checks.append(
        (not wrong, f"completed runs without exactly {steps} StepCompleted: {len(wrong)}")
    )

    again = query(
        "SELECT count(*) FROM eventlog_event c JOIN eventlog_event s ON s.run_id = c.run_id "
        "AND s.type = 'StepStarted' AND s.seq > c.seq "
        "AND s.payload->>'step_id' = c.payload->>'step_id' WHERE c.type = 'StepCompleted'"
    )[0][0]
    checks.append((again == 0, f"steps started again after they completed: {again}"))

    failed_rows = query(
        "SELECT run_id, payload->>'step_id', (payload->>'attempt')::int, "
        "payload->>'error_class', extract(epoch FROM created_at)::float8 "
        "FROM eventlog_event WHERE type = 'StepFailed'"
    )
    lost = {(r[0], r[1], r[2]): r[4] for r in failed_rows if r[3] == "worker_lost"}
    others = [r for r in failed_rows if r[3] != "worker_lost"]
    done_rows = query(
        "SELECT run_id, payload->>'step_id', (payload->>'attempt')::int, "
        "extract(epoch FROM created_at)::float8 FROM eventlog_event WHERE type = 'StepCompleted'"
    )
    completions = {(r[0], r[1]): (r[2], r[3]) for r in done_rows}
    step_times = sorted(r[3] for r in done_rows)
    held = {key: i for i, kill in enumerate(result.kills) for key in kill.held or []}
    unexplained = [key for key in lost if key not in held]
    unrecorded = [key for key in held if key not in lost]
    checks.append(
        (
            not unexplained and not unrecorded,
            f"worker_lost failures: {len(lost)} recorded, for {len(held)} attempts the killed "
            f"workers held ({len(unexplained)} not explained by a kill, {len(unrecorded)} "
            f"held attempts never recorded lost)",
        )
    )
    checks.append((not others, f"other step failures: {len(others)}"))
    leases = query("SELECT count(*) FROM eventlog_steplease")[0][0]
    checks.append((leases == 0, f"step leases left: {leases}"))
    dead, queued, acked = redis_figures()
    checks.append((dead == 0, f"dead letters in Redis (*.XQ): {dead}"))
    checks.append(
        (not result.exits, f"processes that exited without being killed: {len(result.exits)}")
    )
    details += [f"exited: {text}" for text in result.exits]
    checks.append((not result.timed_out, f"finished within --timeout {args.timeout:.0f} s"))

    # Figures
    bounds = query(
        "SELECT extract(epoch FROM min(started_at))::float8, "
        "extract(epoch FROM max(finished_at))::float8 FROM eventlog_runsummary"
    )[0]
    first_start, last_end = bounds[0], bounds[1] or bounds[0]
    finished = sorted(
        r[0]
        for r in query(
            "SELECT extract(epoch FROM finished_at)::float8 FROM eventlog_runsummary "
            "WHERE finished_at IS NOT NULL"
        )
    )
    latencies = [
        r[0]
        for r in query(
            "SELECT extract(epoch FROM finished_at - started_at)::float8 "
            "FROM eventlog_runsummary WHERE status = 'completed'"
        )
    ]
    elapsed = max(last_end - first_start, 1e-9)
    # Full load: until fewer than a window's worth of runs is left (the stream runs dry).
    window = args.in_flight or 200
    drain = finished[-window - 1] if len(finished) > window else last_end
    print()
    print(
        f"Elapsed: {elapsed:.1f} s from the first run started to the last finished "
        f"({result.samples[-1].seconds if result.samples else 0:.0f} s of soak loop)"
    )
    print(
        f"Throughput: {len(done_rows) / elapsed:,.0f} steps/s, {completed / elapsed:,.0f} runs/s "
        f"overall ({len(done_rows):,} steps completed)"
    )
    recoveries: list[float] = []
    detections: list[float] = []
    dips: list[float] = []
    windows: list[tuple[float, float]] = []
    if result.kills:
        print(
            f"Kills: {len(result.kills)} (SIGKILL of a worker's process group, restarted at once)"
        )
    for n, kill in enumerate(result.kills, 1):
        keys = kill.held or []
        back = [completions.get((k[0], k[1]), (0, None))[1] for k in keys]
        found = [lost[k] for k in keys if k in lost]
        line = f"  #{n} +{kill.at - first_start:5.1f} s worker {kill.victim}"
        line += ": " if kill.other_up else " (the other worker was still booting): "
        line += f"{len(keys)} attempt(s) in flight lost"
        if keys and None not in back and len(found) == len(keys):
            detect, recover = max(found) - kill.at, max(back) - kill.at
            detections.append(detect)
            recoveries.append(recover)
            windows.append((kill.at, kill.at + recover))
            line += (
                f"; worker_lost recorded +{detect:.2f} s, retried and completed +{recover:.2f} s"
            )
        else:
            windows.append((kill.at, kill.at + args.lease_seconds))
            line += ", NOT all recovered" if keys else ""
        line += "\n       "
        before = count_between(step_times, kill.at - BASELINE_SECONDS, kill.at) / BASELINE_SECONDS
        if kill.at - BASELINE_SECONDS >= first_start + 1 and kill.at + 10 <= drain and before:
            span = windows[-1][1] - kill.at
            after, lowest = throughput_after(step_times, kill.at, before, span)
            if after is not None:
                dips.append(after)
            back_text = f"{after:.1f} s" if after is not None else "not within 30 s"
            line += (
                f"throughput {before:,.0f} steps/s before, >= 80% again after {back_text} "
                f"(lowest 1 s window until recovered {lowest:.0%})"
            )
        else:
            line += "throughput dip n/a (too near the start or the end)"
        boot = kill.restarted.boot_seconds
        if boot is not None:
            line += f"; restarted worker took messages after {boot:.1f} s"
        elif kill.restarted.crashed:
            line += f"; THE RESTARTED WORKER DID NOT COME UP ({kill.restarted.log})"
        else:
            line += "; restarted worker still booting when the soak ended"
        print(line)
    if result.kills:
        print(f"Recovery, SIGKILL to the last lost attempt completed again: {dist(recoveries)}")
        print(f"  of which to worker_lost recorded (lease expiry + scheduler): {dist(detections)}")
        print(f"Throughput back to >= 80% after a kill: {dist(dips)}")
        quiet_time = kill_time = 0.0
        quiet_steps = kill_steps = 0
        cuts = sorted(
            {first_start, drain, *(t for w in windows for t in w if first_start < t < drain)}
        )
        for start, end in itertools.pairwise(cuts):
            n = count_between(step_times, start, end)
            if any(a <= start and end <= b for a, b in windows):
                kill_time, kill_steps = kill_time + end - start, kill_steps + n
            else:
                quiet_time, quiet_steps = quiet_time + end - start, quiet_steps + n
        if quiet_time and kill_time:
            print(
                f"Throughput at full load: {quiet_steps / quiet_time:,.0f} steps/s quiet "
                f"({quiet_time:.1f} s), {kill_steps / kill_time:,.0f} steps/s from a kill to its "
                f"recovery ({kill_time:.1f} s)"
            )
    print(f"Run latency, started to completed: {dist(latencies)}")
    print(
        f"Starting the runs (4 threads of this process, and watching): {result.cpu_seconds:.1f} "
        f"CPU-s = {result.cpu_seconds / max(total, 1) * 1000:.1f} ms per run"
    )
    if result.samples:
        print(
            f"Max runs in flight {max(s.in_flight for s in result.samples):,}, "
            f"max messages waiting in Redis {max(s.waiting for s in result.samples):,}, "
            f"max queued first steps past their lease (re-sent by the scheduler) "
            f"{max(s.expired_unclaimed for s in result.samples):,}"
        )
    tracebacks, errors = log_lines(logs)
    print(
        f"Left in Redis: {queued} message(s) queued, {acked} in dead workers' ack sets "
        f"(duplicates of finished work); logs: {tracebacks} traceback(s), {errors} ERROR line(s)"
    )

    print("Checks:")
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for text in details:
        print(f"  {text}")
    passed = all(ok for ok, _ in checks)
    if not done:
        explain_stuck()
    print("PASS" if passed else "FAIL")
    return passed


def explain_stuck(limit: int = 3) -> None:
    """The events and leases of a few runs that did not finish."""
    rows = query(
        "SELECT run_id, status, wake_at FROM eventlog_runsummary WHERE NOT status = ANY(%s) "
        "ORDER BY updated_at LIMIT %s",
        [list(TERMINAL), limit],
    )
    for run_id, status, wake_at in rows:
        print(f"  stuck run {run_id}: {status}, wake_at {wake_at}")
        for seq, kind, payload, at in query(
            "SELECT seq, type, payload, created_at FROM eventlog_event WHERE run_id = %s "
            "ORDER BY seq",
            [run_id],
        ):
            payload = json.loads(payload) if isinstance(payload, str) else payload
            detail = {k: payload[k] for k in ("step_id", "attempt", "error_class") if k in payload}
            print(f"    {seq:3} {at:%H:%M:%S.%f} {kind} {detail}")
        for lease in query(
            "SELECT step_id, attempt, worker, expires_at FROM eventlog_steplease WHERE run_id = %s",
            [run_id],
        ):
            print(f"    lease {lease}")


# Main ----------------------------------------------------------------------------------


def fresh_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{SOAK_DB}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10, help="no-op steps per run")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds; 0: no kills")
    parser.add_argument("--kills", type=int, default=0, help="at most this many; 0: no limit")
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    parser.add_argument(
        "--in-flight", type=int, default=200, help="most runs unfinished at once; 0: all"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    args = arguments(
        parser,
        smoke={
            "runs": 500,
            "steps": 5,
            "kill_every": 0.5,
            "kills": 1,
            "lease_seconds": 2.0,
            "in_flight": 50,
            "timeout": 60.0,
        },
    )

    ENV["VECTORBEA_LEASE_SECONDS"] = str(args.lease_seconds)  # start_run's leases too
    logs = Path(tempfile.mkdtemp(prefix="vectorbea-soak-"))
    # Each process's metrics files (prometheus multiprocess), apart from other benches'.
    ENV["VECTORBEA_METRICS_DIR"] = str(logs / "metrics")
    fresh_database()
    setup_django()
    header("bench/soak.py", args.floor)
    from django.conf import settings

    from tests.support.workflows import chain, publish
    from vectorbea.accounts.models import Workspace

    assert settings.DATABASES["default"]["NAME"] == SOAK_DB, settings.DATABASES["default"]
    assert settings.REDIS_URL == SOAK_REDIS, settings.REDIS_URL
    assert settings.VECTORBEA_LEASE_SECONDS == args.lease_seconds
    workspace = Workspace.objects.create(slug="soak", name="Soak")
    workflow = publish(workspace, chain(args.steps, retry=RETRY), name="soak")
    stream = (
        f"a steady stream, at most {args.in_flight:,} unfinished"
        if args.in_flight
        else "all started up front"
    )
    print(
        f"Soak: {args.runs:,} runs × {args.steps} no-op steps ({stream}; {STARTERS} starters), "
        f"2 worker processes (-p 1 -t {WORKER_THREADS} each) + the scheduler"
    )
    print(
        f"  lease {args.lease_seconds:g} s (heartbeat every {args.lease_seconds / 3:.2f} s), "
        f"scheduler every {settings.VECTORBEA_SCHEDULER_INTERVAL_SECONDS:g} s, "
        f"retry: {RETRY['maximum_attempts']} attempts, "
        f"{RETRY['initial_interval_seconds']:g} s backoff"
    )
    kills = (
        f"every {args.kill_every:g} s one worker (a, b, a, ...) gets SIGKILL on its process group "
        "and is restarted at once" + (f", {args.kills} time(s) at most" if args.kills else "")
        if args.kill_every > 0
        else "no kills"
    )
    print(f"  {kills}")
    print(f"  database {SOAK_DB}, Redis {settings.REDIS_URL}, logs in {logs}")
    sys.stdout.flush()

    def terminate(*_: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)
    processes = Processes(args.lease_seconds, logs)
    try:
        result = soak(args, workflow, processes)
    finally:
        processes.kill_all()
    sys.exit(0 if report(args, result, logs) else 1)


if __name__ == "__main__":
    main()
