"""Model steps seen live: how long a model's first word takes from the provider to the run
page in a browser. Prints figures; asserts nothing.

    .venv/bin/python bench/agents.py [--runs 10] [--steps 5] [--smoke]

`--runs` runs of `--steps` LLM steps in a chain, each answering a sentence a word every
50 ms through the scripted provider (tests/support/fake_llm.py, in this process), streamed
(the SDKs' stream helpers). A real worker process and a daphne subprocess; Chromium has
each run's page open. The clock starts when the provider has put a call's first word on
the wire (the fake's `first_word_at`) and stops when a MutationObserver on the page sees
that step's row show text; both are this machine's wall clock. Its way: the worker's SDK
reads it, runs.partials pushes it through the channel layer (asking Redis whether anybody
watches first), daphne's consumer renders it, htmx swaps it in.

Uses its own database (vectorbea_bench) and Redis db 15 (see bench/common.py).
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ENV, ROOT, arguments, header, setup_django, start_workers, stop, summary

WORKSPACE = "bench-agents"
USER = "ada"
ANSWER = "The quick brown fox jumps over the lazy dog while a durable run streams its words"
# A call waits this long before its first word, so the run page is open and its socket is in
# the run's group when that word is sent: only then can the page time the first word.
THINK_SECONDS = 1.5

OBSERVER = """() => {
  window.__firstText = {};
  const look = () => {
    const at = performance.timeOrigin + performance.now();
    document.querySelectorAll('.step-partial').forEach(el => {
      if (el.textContent && !(el.id in window.__firstText)) window.__firstText[el.id] = at;
    });
  };
  new MutationObserver(look).observe(document.body,
    {childList: true, subtree: true, characterData: true});
}"""


def definition(steps: int) -> dict:
    """`steps` LLM steps in a line; each prompt names its run and step, so each provider
    request is matched to the page's row."""
    config = {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 64}
    return {
        "input_schema": {"type": "object"},
        "steps": [
            {
                "id": f"s{i}",
                "kind": "llm",
                "config": {**config, "prompt": f"run {{{{ input.n }}}} step s{i}"},
                "timeout_seconds": 60,
            }
            for i in range(steps)
        ],
        "edges": [
            {"source": f"s{i}", "target": f"s{i + 1}", "port": None} for i in range(steps - 1)
        ],
    }


def prepare(steps: int):
    """The bench's workspace, its member (password "bench") and the workflow."""
    from django.contrib.auth import get_user_model

    from tests.support.workflows import publish
    from vectorbea.accounts.models import Membership, Role, Workspace

    workspace, _ = Workspace.objects.get_or_create(slug=WORKSPACE, defaults={"name": "Agents"})
    user, _ = get_user_model().objects.get_or_create(username=USER)
    user.set_password("bench")
    user.save()
    Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": Role.EDITOR})
    workflow = publish(workspace, definition(steps), name=f"stream-{time.time_ns()}")
    return workflow, user


def start_daphne(port: int) -> subprocess.Popen:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("daphne")),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "vectorbea.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def first_token_to_dom(fake, workflow, user, runs: int, steps: int, port: int) -> None:
    """The provider's first word of each call -> that step's row showing text."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.support.fake_llm import ok, stall
    from vectorbea.runs.commands import start_run

    fake.default = stall(THINK_SECONDS, ok(ANSWER, chunk_delay=0.05))
    seen: dict[tuple[int, str], float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                page.goto("/login/")
                break
            except Exception:  # daphne is still starting
                time.sleep(0.1)
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill("bench")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/w/**")
        for n in range(runs):
            run = start_run(workflow, {"n": n}, started_by=user)
            page.goto(f"/w/{WORKSPACE}/runs/{run.id}/")
            page.evaluate(OBSERVER)
            page.wait_for_function(
                "() => document.querySelector('#run-status')?.dataset.status === 'completed'",
                timeout=60_000 + steps * 10_000,
            )
            for element_id, at in page.evaluate("() => window.__firstText").items():
                step = re.match(r"step-partial-(s\d+)-\d+$", element_id)
                if step:
                    seen[(n, step.group(1))] = at / 1000
        browser.close()
    latencies = []
    for number, sent in sorted(fake.first_word_at.items()):
        prompt = fake.requests[number].messages[-1]["content"]
        asked = re.match(r"run (\d+) step (s\d+)$", prompt)
        if asked and (int(asked.group(1)), asked.group(2)) in seen:
            latencies.append(seen[(int(asked.group(1)), asked.group(2))] - sent)
    missed = runs * steps - len(latencies)
    print(
        f"Provider's first word -> the step's row in the browser's DOM, {len(latencies)} "
        f"calls ({runs} runs of {steps} LLM steps, a word every 50 ms)"
        + (f"; {missed} not seen" if missed else "")
        + ":"
    )
    if latencies:
        print(f"  first token -> DOM: {summary(latencies)} (target p95 <= 150 ms)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="runs watched in the browser")
    parser.add_argument("--steps", type=int, default=5, help="LLM steps in each run")
    args = arguments(parser, smoke={"runs": 1, "steps": 2})
    setup_django()
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain
    # blocking calls between its calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from tests.browser.conftest import free_port
    from tests.support.fake_llm import FakeLLM

    fake = FakeLLM().start()
    os.environ["VECTORBEA_OPENAI_BASE_URL"] = fake.openai_url  # the workers' environment
    os.environ["VECTORBEA_OPENAI_API_KEY"] = "sk-bench-agents-0123456789"
    header("bench/agents.py", args.floor)
    workflow, user = prepare(args.steps)
    port = free_port()
    daphne = start_daphne(port)
    workers = start_workers(1)
    try:
        first_token_to_dom(fake, workflow, user, args.runs, args.steps, port)
    finally:
        stop(workers)
        os.killpg(daphne.pid, signal.SIGTERM)
        daphne.wait(timeout=15)
        fake.close()


if __name__ == "__main__":
    main()
