"""Running a websocket scenario from a sync test, whatever else shares the thread.

Playwright's sync API leaves an event loop running in the test thread (the browser tests
may have run first in this xdist worker), so async_to_sync cannot be used there. A
scenario runs on a fresh thread with its own loop instead."""

import asyncio
import threading
from collections.abc import Awaitable, Callable


def run_async[T](scenario: Callable[[], Awaitable[T]]) -> T:
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(scenario())
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="ws-scenario")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
