"""Agent overhead per turn, beside the provider's own latency: runs of an agent step whose
model asks for one tool call a turn, against the scripted provider (tests/support/
fake_llm.py, in this process) answering each turn after a fixed delay. Prints figures;
asserts nothing.

    .venv/bin/python bench/agent_turns.py [--runs 20] [--turns 6] [--delay 0.5] [--smoke]

Per turn, the overhead is what the platform adds between the provider's answer and the
next turn's request: recording the turn, recording the tool call as started, running the
tool (a Python tool that returns at once), recording its result, and building and sending
the next request. It is measured at the provider: the next request's arrival minus the
moment the answer was sent.

Uses its own database (vectorbea_bench) and Redis db 15 (see bench/common.py).
"""

import argparse
import os
import threading
import time

from common import Completions, arguments, header, setup_django, start_workers, stop, summary

PROCESSES, THREADS = 2, 4  # the Procfile's default worker shape


def provider(turns: int):
    """The scripted provider, answering each request by its run and turn: a tool call until
    the last turn, then the answer. Notes when each request came and its answer went."""
    from tests.support.fake_llm import FakeLLM, calls, ok

    class ByTurn(FakeLLM):
        def __init__(self) -> None:
            super().__init__()
            self.times: dict[tuple[str, int], list[float]] = {}
            self.times_lock = threading.Lock()

        def next_reply(self, request):
            messages = request.body["messages"]
            case = next(m["content"] for m in messages if m["role"] == "user")
            turn = 1 + sum(1 for m in messages if m["role"] == "assistant")
            with self.times_lock:
                # Answered after `delay_seconds`: the answer goes at arrival + delay.
                self.times[(case, turn)] = [time.monotonic(), self.delay_seconds]
            reply = ok("Done.") if turn >= turns else calls(("log_line", {"what": case}))
            with self._lock:
                self.requests.append(request)
                return reply, len(self.requests) - 1

    return ByTurn()


def overheads(times: dict[tuple[str, int], list[float]]) -> list[float]:
    """Per turn after the first: its request's arrival minus the previous answer's send."""
    gaps = []
    for (case, turn), (arrived, _) in times.items():
        before = times.get((case, turn - 1))
        if before is not None:
            gaps.append(arrived - (before[0] + before[1]))
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20, help="agent runs, all at once")
    parser.add_argument("--turns", type=int, default=6, help="model turns per run")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per answer")
    args = arguments(parser, smoke={"runs": 2, "turns": 3, "delay": 0.05})
    setup_django()
    fake = provider(args.turns).start()
    fake.delay_seconds = args.delay
    os.environ["VECTORBEA_OPENAI_BASE_URL"] = fake.openai_url  # the workers' environment
    os.environ["VECTORBEA_OPENAI_API_KEY"] = "sk-bench-agent-turns-0123456789"
    os.environ["VECTORBEA_TOOL_MODULES"] = "tests.support.tools"
    header("bench/agent_turns.py", args.floor)
    from tests.support.workflows import chain, publish
    from vectorbea.accounts.models import Workspace
    from vectorbea.runs.commands import start_run

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    config = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "task": "Case {{ input.n }}",
        "max_tokens": 16,
        "tools": [{"type": "python", "name": "log_line"}],
        "limits": {"max_turns": args.turns + 1, "max_repeats": args.turns + 1},
    }
    workflow = publish(workspace, chain(1, "agent", config, timeout_seconds=300))
    workers = start_workers(PROCESSES, THREADS)
    done = Completions()
    try:
        t0 = time.perf_counter()
        run_ids = [start_run(workflow, {"n": n}).id for n in range(args.runs)]
        done.wait_all(run_ids)
        elapsed = time.perf_counter() - t0
    finally:
        done.close()
        stop(workers)
        fake.close()
    gaps = overheads(fake.times)
    print(
        f"Agent: {args.runs} runs of {args.turns} turns (a tool call each but the last), "
        f"{args.delay:g} s per answer: all finished in {elapsed:.2f} s"
    )
    print(f"  provider's own latency per turn: {args.delay * 1000:.0f} ms (scripted)")
    if gaps:
        print(f"  agent overhead per turn (answer -> next turn asked): {summary(gaps)}")


if __name__ == "__main__":
    main()
