"""Shared by the benchmarks: their own database and Redis db, figures, worker processes.

Where a bench writes is set by the environment, read when this module is imported:
VECTORBEA_BENCH_DB (a database of its own, created and migrated when missing),
VECTORBEA_BENCH_REDIS (a Redis database the bench flushes), VECTORBEA_BENCH_REDIS_PREFIX
and VECTORBEA_BENCH_METRICS_DIR. The smoke tests (tests/bench) point them at the test
process's own names.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = os.environ.get("VECTORBEA_BENCH_DB", "vectorbea_bench")
ENV = {
    "DJANGO_SETTINGS_MODULE": "vectorbea.settings",
    "DEBUG": "true",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
    "REDIS_URL": os.environ.get("VECTORBEA_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
    "REDIS_PREFIX": os.environ.get("VECTORBEA_BENCH_REDIS_PREFIX", "vbbench"),
    "LOG_LEVEL": "WARNING",
    "VECTORBEA_LEASE_SECONDS": "30",
    # Metrics files of the bench's processes, apart from the app's (var/metrics).
    "VECTORBEA_METRICS_DIR": os.environ.get(
        "VECTORBEA_BENCH_METRICS_DIR", str(ROOT / "bench" / "out" / "metrics")
    ),
}


def setup_django() -> None:
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            c.execute(f'CREATE DATABASE "{BENCH_DB}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    vacuum()
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def vacuum() -> None:
    """VACUUM ANALYZE the bench's database, as autovacuum would have. This machine's
    Postgres runs with autovacuum off (its conf.d/90-ci.conf), so without this each bench
    would measure tables holding the dead rows of every earlier run (a run's lease and
    summary rows are rewritten at every step): the figures would drift from run to run."""
    from django.db import connection

    with connection.cursor() as c:  # Django's connection is in autocommit, as VACUUM needs
        c.execute("VACUUM ANALYZE")


def arguments(
    parser: argparse.ArgumentParser, smoke: dict[str, object], floor: int = 500
) -> argparse.Namespace:
    """The bench's arguments, with --floor (durable commits timed for the header) and
    --smoke: the `smoke` sizes instead of the given ones, a run of seconds that shows the
    bench still works end to end (the test suite runs each bench so), its figures too
    small to mean anything."""
    parser.add_argument(
        "--floor", type=int, default=floor, help="durable commits timed for the floor"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest sizes, a few seconds: checks that the bench runs, not its figures",
    )
    args = parser.parse_args()
    if args.smoke:
        for name, value in {"floor": 50, **smoke}.items():
            setattr(args, name, value)
    return args


def commit() -> str:
    """The commit the bench runs on (with "+changes" when the worktree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if changed else head


def commit_floor(n: int) -> list[float]:
    """One durable INSERT + COMMIT at a time, nothing else: the price of durability on this
    machine today, the yardstick every figure is read against."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS bench_floor (id uuid, seq int, payload jsonb)")
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    run = uuid.uuid4()
    times = []
    for seq in range(n):
        t = time.perf_counter()
        with raw.transaction():
            raw.execute(
                "INSERT INTO bench_floor VALUES (%s, %s, %s::jsonb)", [run, seq, '{"a": 1}']
            )
        times.append(time.perf_counter() - t)
    return times


def header(name: str, floor_commits: int = 500) -> list[float]:
    """Print what names a measurement (bench/RESULTS.md): the date, the commit and the
    machine's durable-commit floor, measured now. Returns the floor's times."""
    floor = commit_floor(floor_commits)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{name}: {datetime.now(UTC):%Y-%m-%d}, commit {commit()}, "
        f"floor (one durable INSERT+COMMIT) p50 {ms(statistics.median(floor))} "
        f"over {len(floor)}; load average {load} on {os.cpu_count()} CPUs"
    )
    sys.stdout.flush()
    return floor


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def summary(values: list[float]) -> str:
    return f"p50 {ms(statistics.median(values))}, p95 {ms(percentile(values, 95))}"


# Threads per worker process, as the Procfile runs them: on 2 cores, more threads per
# process only add contention for the GIL and Postgres' locks (measured: 2 x 8 threads
# did ~10 % fewer steps/s than 2 x 4).
WORKER_THREADS = 4


def start_workers(processes: int, threads: int = WORKER_THREADS) -> subprocess.Popen:
    """`dramatiq workers.actors` in a process group of its own, once each of its worker
    processes has booted and takes messages."""
    env = {**os.environ, **ENV, "dramatiq_worker_timeout": "100", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dramatiq"),
            "workers.actors",
            "-p",
            str(processes),
            "-t",
            str(threads),
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while booted(proc.pid) < processes:
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            raise SystemExit(f"The worker processes did not start (exit code {proc.poll()})")
        time.sleep(0.05)
    return proc


def group_pids(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def booted(pgid: int) -> int:
    """How many processes of the group have announced themselves as workers in Redis (a
    worker process does once it has booted: it takes messages from then on)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    host = socket.gethostname()
    prefix = settings.REDIS_PREFIX
    return sum(client.exists(f"{prefix}:workers:{host}:{pid}") for pid in group_pids(pgid))


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process we started, which stops its children gracefully (Dramatiq's
    main process relays it once; a worker process that gets a second SIGTERM exits at
    once, without its shutdown: so not to the whole group)."""
    os.kill(proc.pid, 15)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


class Completions:
    """Tells the bench the moment a run's completion commits, without polling: a trigger
    on the bench database's summary table (this bench's own instrument, not the app's)
    sends a NOTIFY that this connection LISTENs for. Polling in a loop would take CPU
    from the workers it measures."""

    def __init__(self) -> None:
        import psycopg
        from django.db import connection

        with connection.cursor() as c:
            c.execute(
                "CREATE OR REPLACE FUNCTION bench_notify_done() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_notify('bench_done', NEW.run_id::text); RETURN NEW; END "
                "$$ LANGUAGE plpgsql"
            )
            c.execute("DROP TRIGGER IF EXISTS bench_done ON eventlog_runsummary")
            c.execute(
                "CREATE TRIGGER bench_done AFTER UPDATE OF status ON eventlog_runsummary "
                "FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed') "
                "AND OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION bench_notify_done()"
            )
        self.listener = psycopg.connect(
            f"host=127.0.0.1 user=postgres dbname={BENCH_DB}", autocommit=True
        )
        self.listener.execute("LISTEN bench_done")

    def wait(self, run_id) -> None:
        for notice in self.listener.notifies(timeout=30):
            if notice.payload == str(run_id):
                return
        raise TimeoutError(f"Run {run_id} did not finish within 30 s")

    def wait_all(self, run_ids) -> None:
        """Until every one of `run_ids` has finished (notices wait in the connection until
        read, so runs that finished earlier count too)."""
        left = {str(run_id) for run_id in run_ids}
        for notice in self.listener.notifies(timeout=300):
            left.discard(notice.payload)
            if not left:
                return
        raise TimeoutError(f"{len(left)} run(s) did not finish within 300 s")

    def close(self) -> None:
        from django.db import connection

        self.listener.close()
        with connection.cursor() as c:
            c.execute("DROP TRIGGER IF EXISTS bench_done ON eventlog_runsummary")
