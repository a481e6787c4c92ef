"""Every benchmark in bench/ runs here at its smoke size (`--smoke`, seconds), so that one
that no longer runs fails the suite instead of rotting unseen. Only that it ran and
printed its figures is asserted: at these sizes the figures mean nothing.

The benches write to a database named after this test process (one for the soak, which
drops its own at its start), dropped afterwards, this test process's own Redis database and
a key prefix of its own: never the dev database or another test process's. The others
share theirs, as they share vectorbea_bench when run by hand (its migrations run once)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(\.\d+)?"
# What names a measurement: the date, the commit and the machine's floor.
HEADER = rf"^bench/{{}}\.py: \d{{{{4}}}}-\d\d-\d\d, commit \w+.*floor .* p50 {NUMBER} ms"


def database_name(name: str) -> str:
    """A database of this test process's own (named as tests/conftest.py names the test
    database)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    base = os.environ.get("VECTORBEA_TEST_DB", "test_vectorbea") + (f"_{worker}" if worker else "")
    return f"{base}_p{os.getpid()}_{name}"


def drop(database: str) -> None:
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def bench_db():
    database = database_name("bench")
    yield database
    drop(database)


@pytest.fixture
def soak_db():
    database = database_name("bench_soak")
    yield database
    drop(database)


def run_bench(bench: str, database: str, tmp_path: Path, timeout: float = 180) -> str:
    """Run bench/<bench>.py --smoke against this test process's own names; its output."""
    # The soak's logs and Chromium's profile go to a short directory of their own:
    # Chromium's singleton socket lives there, and a socket's path may not pass 107 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="vb-bench-"))
    env = {
        **os.environ,
        "VECTORBEA_BENCH_DB": database,
        "VECTORBEA_BENCH_SOAK_DB": database,
        "VECTORBEA_BENCH_REDIS": settings.REDIS_URL,
        "VECTORBEA_BENCH_REDIS_PREFIX": f"{settings.REDIS_PREFIX}-bench",
        "VECTORBEA_BENCH_METRICS_DIR": str(tmp_path / "metrics"),
        "TMPDIR": str(scratch),
    }
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / f"{bench}.py"), "--smoke"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    assert "Traceback" not in result.stderr, output
    assert re.search(HEADER.format(bench), result.stdout, re.MULTILINE), output
    return result.stdout


def assert_figures(output: str, *lines: str) -> None:
    for line in lines:
        assert re.search(line, output, re.MULTILINE), f"no line like {line!r} in:\n{output}"


def test_engine_bench_runs(bench_db, tmp_path):
    output = run_bench("engine", bench_db, tmp_path)

    assert_figures(
        output,
        rf"^Raw floor, one durable INSERT\+COMMIT: +p50 {NUMBER} ms, p95 {NUMBER} ms$",
        rf"^Engine per step \(in process, 10-step run\): +p50 {NUMBER} ms",
        rf"^Durable commits per step: +{NUMBER} ",
        rf"^First step of a run started on a quiet system: p50 {NUMBER} ms",
        rf"^2 worker process\(es\): one 10-step run end to end p50 {NUMBER} ms.* {NUMBER} steps/s",
        rf"^  CPU per step in that trial: workers {NUMBER} ms",
    )


def test_slow_steps_bench_runs(bench_db, tmp_path):
    output = run_bench("slow_steps", bench_db, tmp_path)

    assert_figures(
        output,
        r"^One LLM step: 20 runs, 0\.2 s per answer$",
        rf"^  all finished in {NUMBER} s \(starting them took {NUMBER} s\); 20 completed$",
        r"^  peak calls in flight at the provider: \d+$",
        r"^  peak Postgres connections of one worker process: \d+$",
        r"^LLM -> transform -> LLM: 4 runs, 0\.2 s per answer$",
    )


def test_killswitch_bench_runs(bench_db, tmp_path):
    output = run_bench("killswitch", bench_db, tmp_path)

    assert_figures(
        output,
        rf"^  switch returns \(all paused\): +p50 {NUMBER} s",
        rf"^  stop latency: +p50 {NUMBER} s, p95 {NUMBER} s",
    )


def test_metrics_check_bench_runs(bench_db, tmp_path):
    output = run_bench("metrics_check", bench_db, tmp_path)

    assert_figures(
        output,
        r"^Every counter matched the event log \(\d+ series\)\.$",
        rf"^Metrics hook per append .*: {NUMBER} µs of CPU$",
    )


def test_soak_bench_runs(soak_db, tmp_path):
    output = run_bench("soak", soak_db, tmp_path)

    assert_figures(
        output,
        rf"^Throughput: {NUMBER} steps/s",
        r"^Kills: 1 ",
        rf"^Recovery, SIGKILL to the last lost attempt completed again: (p50 {NUMBER} s|n/a)",
        rf"^Run latency, started to completed: p50 {NUMBER} s",
        r"^PASS$",
    )


@pytest.mark.browser
def test_builder_bench_runs(bench_db, tmp_path):
    output = run_bench("builder", bench_db, tmp_path)

    assert_figures(
        output,
        rf"^  autosave \(validate \+ save \+ problems\) +p50 +{NUMBER} ms",
        rf"^  500-step import refused +p50 +{NUMBER} ms",
        rf"^  navigation start -> canvas interactive +p50 +{NUMBER} ms",
        rf"^  work per pointer move while dragging +max {NUMBER} ms over \d+ moves",
    )


@pytest.mark.browser
def test_ui_bench_runs(bench_db, tmp_path):
    output = run_bench("ui", bench_db, tmp_path)

    assert_figures(
        output,
        r"^Seeded [\d,]+ runs and [\d,]+ events",
        rf"^  run list, no filters +p50 +{NUMBER} ms +p95 +{NUMBER} ms",
        rf"^  run list, page \d+ \(keyset cursor\) +p50 +{NUMBER} ms",
        rf"^  run page, [\d,]+-event run, first page +p50 +{NUMBER} ms +p95 +{NUMBER} ms",
        rf"^  +time travel to event [\d,]+ +p50 +{NUMBER} ms",
        rf"^  append -> websocket -> htmx swap +p50 +{NUMBER} ms +p95 +{NUMBER} ms",
    )


def test_make_bench_runs_every_bench():
    """`make bench` is `python -m bench`: every bench in turn, with the arguments given."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    for bench in ("engine", "killswitch", "metrics_check", "soak", "ui", "builder"):
        assert f"==> bench/{bench}.py --help" in result.stdout
    assert result.stdout.count("--smoke") >= 6


def test_agent_turns_bench_runs(bench_db, tmp_path):
    output = run_bench("agent_turns", bench_db, tmp_path)

    assert_figures(
        output,
        rf"^Agent: 2 runs of 3 turns .* all finished in {NUMBER} s$",
        r"^  provider's own latency per turn: 50 ms \(scripted\)$",
        rf"^  agent overhead per turn \(answer -> next turn asked\): "
        rf"p50 {NUMBER} ms, p95 {NUMBER} ms$",
    )
