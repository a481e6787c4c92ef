"""Shared by the benchmarks: their own database and Redis db, figures, worker processes."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = os.environ.get("VECTORBEA_BENCH_DB", "vectorbea_bench")
ENV = {
    "DJANGO_SETTINGS_MODULE": "vectorbea.settings",
    "DEBUG": "true",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
    "REDIS_URL": os.environ.get("VECTORBEA_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
    "REDIS_PREFIX": "vbbench",
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
    time.sleep(2.5)  # boot
    return proc


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
