"""Builder benchmark: a workflow of 100 (and 250) steps in the builder, server and browser.
Prints figures; asserts nothing.

    .venv/bin/python bench/builder.py [--steps 100 250] [--saves 50] [--requests 20]
                                      [--navigations 5] [--smoke]

Server times use Django's test Client in this process, warm: a draft autosave (validation by
the engine included), the config panel, the builder page, and the refusal of a 500-step
import. Browser times use a daphne subprocess and Chromium (Playwright) against the bench
database (vectorbea_bench): navigation to an interactive canvas, a full redraw, auto-layout,
and the work done per pointer move while dragging a step.
"""

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from common import ENV, ROOT, arguments, header, ms, percentile, setup_django

WORKSPACE = "bench-builder"
PASSWORD = "bench"


def definition(n: int) -> dict:
    """n steps in layers: transforms that read the run input and the step before, with a
    branch every ten steps, as a large real workflow might be."""
    steps, edges = [], []
    for i in range(n):
        if i % 10 == 5:
            config = {
                "conditions": [{"port": "big", "when": "{{ input.size > 10 }}"}],
                "default_port": "small",
            }
            steps.append({"id": f"s{i}", "kind": "branch", "name": f"Check {i}", "config": config})
        else:
            out = "{{ input.size }}" if i == 0 else f"{{{{ steps.s{i - 1}.output }}}}"
            steps.append(
                {"id": f"s{i}", "kind": "transform", "name": f"Step {i}", "config": {"output": out}}
            )
        if i:
            parent = steps[i - 1]
            port = "big" if parent["kind"] == "branch" else None
            edges.append({"source": f"s{i - 1}", "target": f"s{i}", "port": port})
    schema = {"type": "object", "properties": {"size": {"type": "number"}}}
    return {"input_schema": schema, "steps": steps, "edges": edges}


def seed(n: int):
    from django.contrib.auth import get_user_model

    from vectorbea.accounts.models import Membership, Role, Workspace
    from vectorbea.workflows import commands

    workspace, _ = Workspace.objects.get_or_create(slug=WORKSPACE, defaults={"name": "Bench"})
    user, created = get_user_model().objects.get_or_create(username="builder-bench")
    if created:  # a hash takes about a second: once
        user.set_password(PASSWORD)
        user.save()
    Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": Role.OWNER}
    )
    name = f"{n} steps {uuid.uuid4().hex[:6]}"  # names are unique in a workspace
    workflow = commands.create_workflow(workspace, user, name, definition(n))
    return user, workflow


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def line(label: str, values: list[float]) -> None:
    print(
        f"  {label:<44} p50 {ms(statistics.median(values)):>10}"
        f"  p95 {ms(percentile(values, 95)):>10}"
    )


def server(n: int, saves: int, requests: int, refusal: bool) -> None:
    from django.test import Client
    from django.urls import reverse

    user, workflow = seed(n)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    ws, wid = WORKSPACE, workflow.id
    draft_url = reverse("workflow-draft", args=[ws, wid])
    body = definition(n)
    revision = [workflow.draft_revision]

    def save() -> None:
        response = client.post(
            draft_url,
            json.dumps({"definition": body, "revision": revision[0]}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content[:300]
        revision[0] = response.json()["revision"]

    panel = {"definition": json.dumps(body), "step": f"s{n - 1}"}
    print(f"Server, {n} steps (Django test client, warm):")
    line("autosave (validate + save + problems)", timed(save, saves))
    page_url = reverse("workflow-builder", args=[ws, wid])
    line("builder page", timed(lambda: client.get(page_url), requests))
    panel_url = reverse("workflow-panel", args=[ws, wid])
    line("config panel of the last step", timed(lambda: client.post(panel_url, panel), requests))
    if refusal:
        big = json.dumps(definition(500))
        import_url = reverse("workflow-import", args=[ws])

        def refuse() -> None:
            response = client.post(import_url, {"text": big})
            assert response.status_code == 400 and b"at most 250" in response.content

        line("500-step import refused", timed(refuse, max(1, requests // 2)))


def browser(n: int, navigations: int) -> None:
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    user, workflow = seed(n)
    port = free_port()
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    daphne = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("daphne")),
            *("-b", "127.0.0.1", "-p", str(port), "vectorbea.asgi:application"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = chromium.new_page(
                base_url=f"http://127.0.0.1:{port}", viewport={"width": 1440, "height": 900}
            )
            for _ in range(100):
                try:
                    page.goto("/login/")
                    break
                except Exception:
                    time.sleep(0.1)
            page.get_by_label("Username").fill(user.username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/w/**")
            loads = []
            for _ in range(navigations):
                page.goto(f"/w/{WORKSPACE}/workflows/{workflow.id}/")
                page.wait_for_selector("#builder[data-ready='1']")
                loads.append(page.evaluate("window.vectorbeaBuilder.loadMs") / 1000)
            figures = page.evaluate(
                """() => {
                  const b = window.vectorbeaBuilder;
                  const renders = [], layouts = [];
                  for (let i = 0; i < 30; i++) renders.push(b.render() / 1000);
                  for (let i = 0; i < 5; i++) layouts.push(b.autoLayout() / 1000);
                  return {renders, layouts};
                }"""
            )
            x, y = page.evaluate(
                """() => {  // the middle of a step in view (a long chain is wider than the canvas)
                  const c = document.getElementById('canvas').getBoundingClientRect();
                  for (const box of document.querySelectorAll('[data-node] .node-box')) {
                    const r = box.getBoundingClientRect();
                    if (r.left > c.left && r.right < c.right - 300 && r.top > c.top
                        && r.bottom < c.bottom - 200)
                      return [r.x + r.width / 2, r.y + r.height / 2];
                  }
                }"""
            )
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 300, y + 200, steps=60)
            page.mouse.up()
            drag = page.evaluate("window.vectorbeaBuilder.stats")
            chromium.close()
    finally:
        os.killpg(daphne.pid, signal.SIGTERM)
        daphne.wait(timeout=15)
    print(f"Browser, {n} steps (Chromium, headless, 1440×900):")
    line("navigation start -> canvas interactive", loads)
    line("full redraw of the canvas", figures["renders"])
    line("auto-layout (dagre) + redraw", figures["layouts"])
    frames, worst = drag.get("dragFrames", 0), drag.get("dragFrameMaxMs", 0)
    print(f"  {'work per pointer move while dragging':<44} max {worst:.2f} ms over {frames} moves")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="*", default=[100, 250])
    parser.add_argument("--saves", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per server figure")
    parser.add_argument("--navigations", type=int, default=5, help="builder loads in Chromium")
    args = arguments(parser, smoke={"steps": [20], "saves": 3, "requests": 3, "navigations": 2})
    setup_django()
    header("bench/builder.py", args.floor)
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the refused imports
    for i, n in enumerate(args.steps):
        server(n, args.saves, args.requests, refusal=i == 0)
        browser(n, args.navigations)


if __name__ == "__main__":
    main()
