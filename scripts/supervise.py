"""Run the Procfile's processes under supervisord, as scripts/run does (after its setup).

    python scripts/supervise.py [--dir DIR]

The Procfile stays the one list of processes (other platforms read it as it is): this writes
a supervisord config for it to DIR (default var/supervisor) and execs supervisord in the
foreground. So:

- a process that dies (a crash, SIGKILL, the OOM killer) is started again and the others
  keep serving (supervisord's defaults: one that exits within a second of starting, three
  times running, is given up on: `gave up: web entered FATAL state`);
- every line a process prints goes to this terminal as `HH:MM:SS name | line`, relayed by
  the `logs` event listener below (supervisord has no prefix of its own);
- Ctrl-C (SIGINT) or SIGTERM stops everything: each process gets SIGTERM (to its main
  process only: dramatiq's hands it on to its workers, which shut down gracefully), and
  whatever is left after STOP_WAIT_SECONDS is killed with its whole process group.

Variables from .env reach the processes (the environment wins), as with honcho and in
vectorbea.settings; PATH starts with this interpreter's bin directory.
"""

import argparse
import fcntl
import os
import pwd
import re
import shlex
import signal
import stat
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The worker's Procfile line gives Dramatiq 30 s to shut down; a little more before SIGKILL.
STOP_WAIT_SECONDS = 40
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(ValueError):
    pass


def read_procfile(path: Path) -> list[tuple[str, str]]:
    """The (name, command) pairs of a Procfile, in order. A command must be one simple
    command (leading VAR=value assignments allowed): supervisord signals the process it
    started, so that has to be the program itself, not a shell waiting on it."""
    processes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if not match:
            raise ProcfileError(f"{path.name}, line {number}: not `name: command`")
        name, command = match[1], match[2].strip()
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        if any(token and set(token) <= set("();<>|&") for token in lexer):
            raise ProcfileError(
                f"{path.name}, line {number} ({name}): one simple command only, no "
                "shell operators (;, &&, |, redirections)"
            )
        processes.append((name, command))
    if not processes:
        raise ProcfileError(f"{path} declares no process")
    return processes


def supervisord_config(processes: list[tuple[str, str]], run_dir: Path) -> str:
    """supervisord's config for the processes, run from the repository's root."""

    def value(text: str) -> str:  # supervisord expands %(name)s in values
        return text.replace("%", "%%")

    width = max(len(name) for name, _ in processes)
    sections = [
        "; Written by scripts/supervise.py from the Procfile at each start: edit the Procfile.",
        "[supervisord]",
        "nodaemon=true",
        # Its own lines (spawned, exited, gave up) go to the terminal, not to a file.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile={value(str(run_dir / 'supervisord.pid'))}",
        f"childlogdir={value(str(run_dir))}",
        f"user={value(pwd.getpwuid(os.getuid()).pw_name)}",  # as now: no warning as root
        "",
        "[eventlistener:logs]",
        f"command={value(shlex.join([sys.executable, __file__, 'relay-logs', str(width)]))}",
        "events=PROCESS_LOG",
        "buffer_size=10000",
        "priority=1",  # starts first, stops last
        "autorestart=true",
        "stdout_logfile=NONE",  # its stdout speaks the listener protocol to supervisord
        "stderr_logfile=/dev/stdout",  # where it writes the lines it relays
        "stderr_logfile_maxbytes=0",
    ]
    # One group: supervisord stops a group's processes together, and groups one by one.
    sections += ["", "[group:app]", f"programs={','.join(name for name, _ in processes)}"]
    for name, command in processes:
        sections += [
            "",
            f"[program:{name}]",
            f"command={value(shlex.join(['/bin/sh', '-c', f'exec env {command}']))}",
            f"directory={value(str(ROOT))}",
            "autorestart=true",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=false",  # SIGTERM to the main process only
            "killasgroup=true",  # SIGKILL to all of it
            "redirect_stderr=true",
            "stdout_logfile=NONE",
            "stdout_events_enabled=true",  # to the logs listener
        ]
    return "\n".join(sections) + "\n"


def relay_logs(width: int) -> None:
    """supervisord's event listener protocol (in bytes: `len` counts bytes): for each
    PROCESS_LOG event, write the output's complete lines to stderr, prefixed with the
    time and the process's name; a partial line waits for the rest of it."""
    stdin, stdout, stderr = sys.stdin.buffer, sys.stdout.buffer, sys.stderr
    partial: dict[str, bytes] = {}

    def stop(signum: int, frame: object) -> None:  # supervisord stops it last
        for name, rest in partial.items():
            if rest:
                text = rest.decode(errors="replace")
                stderr.write(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {text}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:  # supervisord has exited
            return
        header = dict(word.split(":", 1) for word in header_line.decode().split())
        payload = stdin.read(int(header["len"]))
        event, _, data = payload.partition(b"\n")
        name = dict(word.split(":", 1) for word in event.decode().split())["processname"]
        *lines, partial[name] = (partial.get(name, b"") + data).split(b"\n")
        stamp = time.strftime("%H:%M:%S")
        for line in lines:
            text = line.decode(errors="replace").rstrip("\r")
            stderr.write(f"{stamp} {name:<{width}} | {text}\n")
        stderr.flush()
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "supervisor")
    sub = parser.add_subparsers(dest="command")
    relay = sub.add_parser("relay-logs", help="the log listener supervisord runs")
    relay.add_argument("width", type=int)
    args = parser.parse_args()
    if args.command == "relay-logs":
        return relay_logs(args.width)

    from dotenv import load_dotenv

    try:
        processes = read_procfile(ROOT / "Procfile")
    except ProcfileError as error:
        sys.exit(f"scripts/supervise.py: {error}")
    load_dotenv(ROOT / ".env", override=False)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # print() reaches the terminal at once
    # supervisord writes what the listener relays by opening /dev/stdout afresh, in append
    # mode: when that is a file, its own writes must append too, or each overwrites the other.
    if stat.S_ISREG(os.fstat(1).st_mode):
        fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_APPEND)
    run_dir = args.dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "supervisord.conf"
    config.write_text(supervisord_config(processes, run_dir))
    supervisord = str(BIN / "supervisord")
    os.execv(supervisord, [supervisord, "-c", str(config)])  # noqa: S606 (a fixed program)


if __name__ == "__main__":
    main()
