"""Budget, rate-limit and slot tests, against the real Postgres and Redis.

`in_processes` runs a function in several fresh Django processes at once (against this
test process's database and Redis), for the guarantees that must hold across processes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import importlib, json, sys
import django
django.setup()
module, name = sys.argv[1].rsplit(":", 1)
target = getattr(importlib.import_module(module), name)
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(target(*sys.argv[2:])), flush=True)
"""


def in_processes(target: str, *argvs: list[str], timeout: float = 60) -> list[Any]:
    """Run `target` ("module:function") in one process per argument list, released
    together once every process is ready; returns each one's result (JSON)."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, target, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise AssertionError(f"A child process did not start:\n{proc.stderr.read()}")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            results.append(json.loads(out.splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
