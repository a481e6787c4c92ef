"""Every benchmark, one after another: `make bench`, or `python -m bench [--smoke]
[--floor N]` (what every bench takes; the arguments go to each). Exits non-zero when one
did (the soak and the metrics check exit 1 when a check fails)."""

import subprocess
import sys
from pathlib import Path

BENCHES = ("engine", "killswitch", "metrics_check", "soak", "ui", "builder", "agent_turns")


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHES:
        print(f"==> bench/{name}.py {' '.join(sys.argv[1:])}", flush=True)
        code = subprocess.run([sys.executable, str(here / f"{name}.py"), *sys.argv[1:]]).returncode
        if code:
            failed.append(f"bench/{name}.py (exit code {code})")
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
