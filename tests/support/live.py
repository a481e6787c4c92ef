"""Real worker and scheduler processes for tests, against the test database and this test
process's own Redis database and key prefix."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from tests.support.tools import CREATE_TABLE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def event_rows(run_id) -> list[tuple[int, str, dict]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, type, payload FROM eventlog_event WHERE run_id = %s ORDER BY seq",
            [run_id],
        )
        return [(seq, type_, json.loads(payload)) for seq, type_, payload in cursor.fetchall()]


def event_rows_at(run_id) -> list[tuple[int, str, dict, Any]]:
    """event_rows with each row's commit time."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, type, payload, created_at FROM eventlog_event WHERE run_id = %s "
            "ORDER BY seq",
            [run_id],
        )
        return [(seq, t, json.loads(p), at) for seq, t, p, at in cursor.fetchall()]


def event_types(run_id) -> list[str]:
    return [row[1] for row in event_rows(run_id)]


def run_status(run_id) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM eventlog_runsummary WHERE run_id = %s", [run_id])
        row = cursor.fetchone()
    return row[0] if row else None


def side_effects(run_id) -> list[tuple[str, int, str, str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT step_id, attempt, phase, idempotency_key, pid FROM test_side_effect "
            "WHERE run_id = %s ORDER BY id",
            [run_id],
        )
        return cursor.fetchall()


class Live:
    """Starts and stops real `dramatiq` and `manage.py scheduler` processes."""

    def __init__(self, **extra_env: str) -> None:
        db = settings.DATABASES["default"]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_PREFIX": settings.REDIS_PREFIX,
            "VECTORBEA_TOOL_MODULES": "tests.support.tools",
            "VECTORBEA_LEASE_SECONDS": str(settings.VECTORBEA_LEASE_SECONDS),
            "VECTORBEA_SCHEDULER_INTERVAL_SECONDS": "0.1",
            "dramatiq_worker_timeout": "100",
            "DB_CONN_MAX_AGE": "60",
            "PYTHONPATH": str(ROOT),
            **extra_env,
        }
        self.procs: list[subprocess.Popen] = []
        self.logs = ROOT / "test-artifacts" / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{os.getpid()}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def worker(self, processes: int = 1, threads: int = 4) -> subprocess.Popen:
        return self._spawn(
            "worker",
            [str(BIN / "dramatiq"), "workers.actors", "-p", str(processes), "-t", str(threads)],
        )

    def wait_until_booted(self, processes: int = 1, timeout: float = 60) -> None:
        """Until `processes` worker processes have booted (each lists itself once it is
        ready): a test that times a step from its start must not count a worker's boot."""
        from workers.announce import listed

        wait_for(lambda: len(listed()) >= processes, timeout=timeout, interval=0.1)

    def scheduler(self) -> subprocess.Popen:
        return self._spawn("scheduler", [sys.executable, "manage.py", "scheduler"])

    @staticmethod
    def signal(proc: subprocess.Popen, sig: int) -> None:
        """Signal the whole process group (dramatiq's main process and its workers)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, proc: subprocess.Popen) -> None:
        self.signal(proc, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Kill every process group this test started, also those whose leader is gone
        already: a worker process orphaned by a killed main process must not live on to
        take the next test's messages."""
        for proc in self.procs:
            self.signal(proc, signal.SIGCONT)
            self.signal(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)


def prepare_side_effects() -> None:
    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
        cursor.execute("TRUNCATE test_side_effect")


def flush_own_redis() -> None:
    """This test process's own Redis database (see settings_test): nobody else's keys."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
