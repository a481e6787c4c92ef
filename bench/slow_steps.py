"""Slow steps at scale: many runs whose steps wait on a model that takes seconds to answer,
on the Procfile's worker shape (2 processes x 4 threads). Prints figures; asserts nothing.

    .venv/bin/python bench/slow_steps.py [--runs 2000] [--delay 2] [--chain-runs 200]
                                         [--chain-delay 10] [--processes 2] [--smoke]

Two measurements, each against the scripted provider (tests/support/fake_llm.py, in a
process of its own) answering every call after a fixed delay:
- `--runs` runs of one LLM step (`--delay` seconds per answer);
- `--chain-runs` runs of LLM -> transform -> LLM (`--chain-delay` seconds per answer).
For each: the time from the first start to the last completion; the most calls the
provider held at once; the most Postgres connections one worker process held (each worker
process names its connections); and each worker process's memory (RSS) before and at the
peak of calls in flight.

Uses its own database (vectorbea_bench) and Redis db 15 (see bench/common.py).
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

from common import (
    BENCH_DB,
    Completions,
    arguments,
    group_pids,
    header,
    ms,
    setup_django,
    start_workers,
    stop,
)
from engine import cpu_by_role

PROCESSES, THREADS = 2, 4  # the Procfile's default worker shape
STARTERS = 4


class FakeProcess:
    """The scripted provider (tests/support/fake_llm.py) in a process of its own, so that
    its work and the starters' do not share one interpreter lock: the figures measure the
    workers, not the bench. Its counts and its delay are shared memory."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")  # before Django opens a connection
        self._shared = {
            "in_flight": context.Value("i", 0, lock=False),
            "peak": context.Value("i", 0, lock=False),
            "reset": context.Value("i", 0, lock=False),
            "delay": context.Value("d", 0.0, lock=False),
            "port": context.Value("i", 0, lock=False),
        }
        self._stop = context.Event()
        self._process = context.Process(
            target=serve_fake, args=(self._shared, self._stop), daemon=True
        )

    def start(self) -> "FakeProcess":
        self._process.start()
        deadline = time.monotonic() + 30
        while not self._shared["port"].value:
            if time.monotonic() > deadline or not self._process.is_alive():
                raise SystemExit("The fake provider's process did not start")
            time.sleep(0.05)
        return self

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self._shared['port'].value}/v1"

    @property
    def in_flight(self) -> int:
        return self._shared["in_flight"].value

    @property
    def cpu(self) -> float:
        """CPU seconds the provider's process has used."""
        return cpu_seconds(self._process.pid) or 0.0

    @property
    def peak_in_flight(self) -> int:
        return self._shared["peak"].value

    def prepare(self, delay: float) -> None:
        """Answer after `delay` seconds from now on, and count the peak afresh."""
        self._shared["delay"].value = delay
        self._shared["peak"].value = 0
        self._shared["reset"].value = 1
        while self._shared["reset"].value:  # taken into account by the provider's process
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._process.join(10)


def serve_fake(shared: dict, stop) -> None:
    """The fake provider's process: serve, and publish its counts every 2 ms."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.fake_llm import FakeLLM

    fake = FakeLLM().start()
    shared["port"].value = fake.port
    while not stop.wait(0.002):
        fake.delay_seconds = shared["delay"].value
        if shared["reset"].value:
            fake.peak_in_flight = fake.in_flight
            shared["reset"].value = 0
        shared["in_flight"].value = fake.in_flight
        shared["peak"].value = fake.peak_in_flight
    fake.close()


def llm_step(step_id: str) -> dict:
    config = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi", "max_tokens": 16}
    return {"id": step_id, "kind": "llm", "config": config, "timeout_seconds": 120}


def workflows(workspace):
    from tests.support.workflows import publish

    one = {"input_schema": {"type": "object"}, "steps": [llm_step("ask")], "edges": []}
    chain = {
        "input_schema": {"type": "object"},
        "steps": [
            llm_step("draft"),
            {"id": "shape", "kind": "transform", "config": {"output": {"n": 1}}},
            llm_step("check"),
        ],
        "edges": [
            {"source": "draft", "target": "shape", "port": None},
            {"source": "shape", "target": "check", "port": None},
        ],
    }
    tag = uuid.uuid4().hex[:6]
    return publish(workspace, one, name=f"slow-{tag}"), publish(
        workspace, chain, name=f"chain-{tag}"
    )


class Sampler:
    """Every 50 ms: calls the provider holds, each worker process's Postgres connections
    and memory (keeps the peaks), and the CPU time of the bench database's backends (the
    machine's Postgres serves other databases too: their backends are not counted)."""

    def __init__(self, fake, worker_pids: list[int]) -> None:
        self.fake, self.pids = fake, worker_pids
        self.peak_calls = 0
        self.peak_connections = 0
        self.polls = 0  # each one a transaction of the bench database's
        self._backend_cpu: dict[int, float] = {}  # pid: CPU seconds when last seen
        self._backend_base: dict[int, float] = {}  # pid: CPU seconds at the start
        self.rss_at_peak: dict[int, int] = {}
        self.rss_before = {pid: rss_kib(pid) for pid in worker_pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg
        from common import BENCH_DB

        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={BENCH_DB}") as db:
            db.autocommit = True
            while not self._stop.wait(0.05):
                rows = db.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name LIKE 'vectorbea:%%' GROUP BY 1",
                    [BENCH_DB],
                ).fetchall()
                self.polls += 1
                backends = db.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", [BENCH_DB]
                ).fetchall()
                self.polls += 1
                for (pid,) in backends:
                    cpu = cpu_seconds(pid)
                    if cpu is not None:
                        if self.polls == 2:  # those there at the start: from now on
                            self._backend_base[pid] = cpu
                        self._backend_cpu[pid] = cpu
                mine = [n for name, n in rows if int(name.split(":")[1]) in self.pids]
                self.peak_connections = max(self.peak_connections, max(mine, default=0))
                calls = self.fake.in_flight
                if calls >= self.peak_calls:
                    self.peak_calls = calls
                    self.rss_at_peak = {pid: rss_kib(pid) for pid in self.pids}

    @property
    def backend_cpu(self) -> float:
        """CPU seconds the bench database's backends used while sampled."""
        return sum(cpu - self._backend_base.get(pid, 0.0) for pid, cpu in self._backend_cpu.items())


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU time (user + system), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_all(workflow, runs: int) -> list:
    """Start `runs` runs from STARTERS threads at once; their ids."""
    from django.db import connection

    from vectorbea.runs.commands import start_run

    started: list = []
    lock = threading.Lock()

    def starter(count: int) -> None:
        try:
            for _ in range(count):
                run = start_run(workflow, {})
                with lock:
                    started.append(run.id)
        finally:
            connection.close()

    shares = [runs // STARTERS + (1 if i < runs % STARTERS else 0) for i in range(STARTERS)]
    threads = [threading.Thread(target=starter, args=(n,)) for n in shares if n]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def measure(
    label: str, workflow, runs: int, delay: float, fake, workers, calls_per_run: int = 1
) -> None:
    fake.prepare(delay)
    done = Completions()
    pids = [pid for pid in group_pids(workers.pid) if pid != workers.pid]
    try:
        with Sampler(fake, pids) as sampler:
            roles, commits = cpu_by_role(workers.pid), xact_commits()
            fake_cpu = fake.cpu
            t0 = time.perf_counter()
            run_ids = start_all(workflow, runs)
            started = time.perf_counter() - t0
            done.wait_all(run_ids)
            elapsed = time.perf_counter() - t0
            spent = {
                role: seconds - roles.get(role, 0.0)
                for role, seconds in cpu_by_role(workers.pid).items()
            }
            spent["fake provider"] = fake.cpu - fake_cpu
            time.sleep(1.0)  # a backend reports its counts to pg_stat_database within 1 s
            commits = xact_commits() - commits - sampler.polls - 1
    finally:
        done.close()
    postgres = sampler.backend_cpu
    statuses = completed_count(run_ids)
    growth = [
        (sampler.rss_at_peak.get(pid, 0) - sampler.rss_before.get(pid, 0)) / 1024 for pid in pids
    ]
    per_thousand = [
        g / (sampler.peak_calls / len(pids) / 1000) if sampler.peak_calls else 0.0 for g in growth
    ]
    print(f"{label}: {runs} runs, {delay:g} s per answer")
    print(f"  all finished in {elapsed:.2f} s (starting them took {started:.2f} s); {statuses}")
    print(f"  peak calls in flight at the provider: {fake.peak_in_flight}")
    calls = runs * calls_per_run
    spent["bench (starters)"] = spent.pop("bench (starters)")  # after the provider's
    spent["postgres (every database)"] = spent.pop("postgres")
    spent["postgres (the bench database's backends)"] = postgres
    split = ", ".join(f"{role} {ms(seconds / calls)}" for role, seconds in spent.items())
    print(f"  CPU per call: {split}")
    print(
        f"  transactions committed per call: {commits / calls:.2f} (the bench database's, "
        "the runs' starts included)"
    )
    print(f"  peak Postgres connections of one worker process: {sampler.peak_connections}")
    rss = ", ".join(
        f"{mib(sampler.rss_before.get(pid, 0))} -> {mib(sampler.rss_at_peak.get(pid, 0))} MiB"
        for pid in pids
    )
    print(f"  worker RSS per process, idle -> at the peak: {rss}")
    if per_thousand:
        print(
            f"  RSS growth per 1,000 calls in flight: {statistics.mean(per_thousand):.0f} MiB "
            "(averaged over the processes)"
        )


def xact_commits() -> int:
    """Transactions committed so far in the bench's database (every client's)."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [BENCH_DB])
        return c.fetchone()[0]


def completed_count(run_ids: list) -> str:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            "SELECT status, count(*) FROM eventlog_runsummary WHERE run_id = ANY(%s) GROUP BY 1",
            [run_ids],
        )
        return ", ".join(f"{n} {status}" for status, n in sorted(c.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000, help="runs of one LLM step")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per answer")
    parser.add_argument("--chain-runs", type=int, default=200, help="runs of LLM->transform->LLM")
    parser.add_argument("--chain-delay", type=float, default=10.0)
    parser.add_argument(
        "--processes",
        type=int,
        default=PROCESSES,
        help="worker processes (the Procfile's 2; 1 shows what one process holds in flight)",
    )
    args = arguments(parser, smoke={"runs": 20, "delay": 0.2, "chain_runs": 4, "chain_delay": 0.2})
    fake = FakeProcess().start()
    setup_django()
    os.environ["VECTORBEA_OPENAI_BASE_URL"] = fake.openai_url  # the workers' environment
    os.environ["VECTORBEA_OPENAI_API_KEY"] = "sk-bench-slow-steps-0123456789"
    header("bench/slow_steps.py", args.floor)
    from vectorbea.accounts.models import Workspace

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    one, chain = workflows(workspace)
    workers = start_workers(args.processes, THREADS)
    try:
        measure("One LLM step", one, args.runs, args.delay, fake, workers)
        measure(
            "LLM -> transform -> LLM", chain, args.chain_runs, args.chain_delay, fake, workers, 2
        )
    finally:
        stop(workers)
        fake.close()


if __name__ == "__main__":
    main()
