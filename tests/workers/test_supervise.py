"""The run command's process supervisor (scripts/supervise.py, which scripts/run ends with):
a process that dies is started again while the others keep serving, its output reaches the
terminal under its name, and stopping it (Ctrl-C) stops everything gracefully, leaving no
process behind."""

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.live import ROOT, run_status, wait_for
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run
from workers import announce


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with(marker: str) -> dict[int, str]:
    """The live processes whose environment holds `marker`: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile, or a zombie
            continue
    return {pid: cmdline.decode() for pid, cmdline in found.items()}


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def pid_of(marker: str, program: str) -> int:
    (pid,) = [pid for pid, cmd in processes_with(marker).items() if program in cmd]
    return pid


def worker_pids() -> set[int]:
    return {int(worker["name"].rsplit(":", 1)[1]) for worker in announce.listed()}


def test_a_killed_worker_process_is_started_again_while_web_keeps_serving(live, acme, tmp_path):
    marker = f"vectorbea-supervise-{uuid.uuid4().hex}"
    port = free_port()
    live.env.update({"PORT": str(port), "WORKER_PROCESSES": "2", "SUPERVISE_TEST": marker})
    supervisor = live._spawn(
        "supervise", [sys.executable, "scripts/supervise.py", "--dir", str(tmp_path)]
    )
    log = live.logs / f"supervise-{os.getpid()}-{len(live.procs) - 1}.log"
    failures: list[str] = []
    stop_polling = threading.Event()

    def poll_healthz() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            while not stop_polling.wait(0.1):
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                if status != 200:
                    failures.append(str(status))

    try:
        wait_for(lambda: healthy(port), timeout=90, interval=0.5)
        first = wait_for(lambda: len(worker_pids()) == 2 and worker_pids(), timeout=90)
        web, scheduler = pid_of(marker, "daphne"), pid_of(marker, "manage.py scheduler")
        poller = threading.Thread(target=poll_healthz, daemon=True)
        poller.start()

        killed = min(first)
        os.kill(killed, signal.SIGKILL)  # as the OOM killer would
        wait_for(lambda: len(worker_pids() - first) == 2, timeout=90)  # the worker, again
        run = start_run(publish(acme, chain(2)), {})
        wait_for(lambda: run_status(run.id) == "completed", timeout=60)

        stop_polling.set()
        poller.join(timeout=5)
        assert failures == []  # web answered throughout
        assert (pid_of(marker, "daphne"), pid_of(marker, "manage.py scheduler")) == (
            web,
            scheduler,
        )  # neither was stopped

        supervisor.send_signal(signal.SIGINT)  # Ctrl-C
        assert supervisor.wait(timeout=90) == 0
        assert processes_with(marker) == {}  # nothing left behind
        # ... and no file but the config: the output went to the terminal, not to logs
        assert [path.name for path in tmp_path.iterdir()] == ["supervisord.conf"]
    finally:
        stop_polling.set()
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGINT)
            try:
                supervisor.wait(timeout=90)
            except subprocess.TimeoutExpired:
                supervisor.kill()
        # Until none is left: a process may fork one more while the first ones are killed.
        deadline = time.monotonic() + 10
        while (left := processes_with(marker)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    output = log.read_text()
    assert f"Worker with PID {killed} exited unexpectedly" in output
    for name in ("web", "worker", "scheduler"):  # each line under its process's name
        assert f" {name:<9} | " in output
    # Stopped gracefully: SIGTERM to dramatiq's main process, which hands it on.
    assert "Sending signal 'SIGTERM' to subprocesses" in output
    assert "stopped: worker (exit status 0)" in output


def test_worker_processes_stop_when_dramatiqs_main_process_is_killed(live):
    """Orphaned, they would go on taking messages beside the ones a supervisor starts in
    its place, and be left behind when everything stops."""
    main = live.worker(processes=2)

    def booted_children() -> set[int]:  # listed, and forked by this main process
        return {pid for pid in worker_pids() if parent_of(pid) == main.pid}

    children = wait_for(lambda: len(booted_children()) == 2 and booted_children(), timeout=90)

    os.kill(main.pid, signal.SIGKILL)  # the main process alone
    main.wait(timeout=10)

    def alive(pid: int) -> bool:
        return state_of(pid) not in ("", "Z")

    try:
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=30)
    except AssertionError:
        left = {pid: (state_of(pid), wchan_of(pid)) for pid in children if alive(pid)}
        raise AssertionError(f"Orphaned worker processes alive (state, wchan): {left}") from None


def stat_of(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, parent, ...); [] once
    the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return []


def state_of(pid: int) -> str:
    """The process's state letter (R, S, Z...); "" once it is gone."""
    fields = stat_of(pid)
    return fields[0] if fields else ""


def parent_of(pid: int) -> int | None:
    fields = stat_of(pid)
    return int(fields[1]) if fields else None


def wchan_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "?"


def load_supervise():
    spec = importlib.util.spec_from_file_location("supervise", ROOT / "scripts" / "supervise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_supervised_programs_are_the_procfile_lines_run_as_themselves(tmp_path):
    supervise = load_supervise()
    processes = supervise.read_procfile(ROOT / "Procfile")
    config = supervise.supervisord_config(processes, tmp_path)

    assert [name for name, _ in processes] == ["web", "worker", "scheduler"]
    for name, command in processes:
        # exec: the process supervisord signals is the program, not a shell waiting on it
        assert f"[program:{name}]\ncommand=/bin/sh -c 'exec env {command}'\n" in config

    procfile = tmp_path / "Procfile"
    procfile.write_text("web: daphne app\nrelease: python manage.py migrate && daphne app\n")
    with pytest.raises(supervise.ProcfileError, match="line 2 \\(release\\): one simple command"):
        supervise.read_procfile(procfile)
