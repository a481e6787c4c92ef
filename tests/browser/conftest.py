"""Browser tests: a real daphne process serving the test database, driven by Chromium.

The server is a subprocess, so it only sees committed rows: browser tests must be
`@pytest.mark.django_db(transaction=True)`. Every test that uses `page` leaves a screenshot
in test-artifacts/ for review.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "correct horse battery staple"  # what tests.conftest.make_member sets

expect.set_options(timeout=10_000)


@dataclass(frozen=True)
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_tests() -> str:
    db = settings.DATABASES["default"]
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def wait_until_up(server: LiveServer, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"daphne exited with {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/login/", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"daphne did not answer within {timeout_seconds}s:\n{server.log.read_text()}"
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def daphne_server(name: str = "daphne", **extra_env: str) -> Iterator[str]:
    """Run `daphne vectorbea.asgi:application` against the pytest test database, with
    `extra_env` on top of this process's environment; yield its base URL. Its output goes
    to test-artifacts/<name>-<worker>.log."""
    ARTIFACTS.mkdir(exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log = ARTIFACTS / f"{name}-{worker}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test",
        "DATABASE_URL": database_url_for_tests(),
        "DB_CONN_MAX_AGE": "0",  # hold no connection that could block the test DB's flush/drop
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": settings.REDIS_PREFIX,
        "PYTHONUNBUFFERED": "1",
        # The tests' Python tools, so the builder has tools to offer an agent step.
        "VECTORBEA_TOOL_MODULES": "tests.support.tools",
        **extra_env,
    }
    daphne = str(Path(sys.executable).with_name("daphne"))
    last_error: Exception | None = None
    for _ in range(3):  # the free port can be taken between our probe and daphne's bind
        port = free_port()
        with log.open("w") as out:
            process = subprocess.Popen(
                [daphne, "-b", "127.0.0.1", "-p", str(port), "vectorbea.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
        try:
            wait_until_up(server)
        except RuntimeError as exc:
            stop(process)
            last_error = exc
            continue
        try:
            yield server.url
        finally:
            stop(process)
        return
    raise RuntimeError(f"Could not start daphne: {last_error}")


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Start `daphne vectorbea.asgi:application` against the pytest test database.

    Yields the base URL, e.g. "http://127.0.0.1:51234". Session scoped: one server per
    xdist worker. Its output goes to test-artifacts/daphne-<worker>.log.
    """
    with daphne_server() as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright's sync API."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


@pytest.fixture
def page(browser: Browser, live_server_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh 1280×800 browser context on the live server (relative URLs work).

    Records console errors and CSP violations; the test fails if any occurred. Leaves
    test-artifacts/<test name>.png behind, pass or fail.
    """
    context = browser.new_context(base_url=live_server_url, viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield page
        # Expected failures (e.g. a deliberate 404) may log "Failed to load resource".
        serious = [p for p in problems if "Failed to load resource" not in p]
        assert serious == [], f"Browser console errors: {serious}"
    finally:
        try:
            page.screenshot(path=screenshot_path(request.node.name), full_page=True)
        finally:
            context.close()


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login page like a person would."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
