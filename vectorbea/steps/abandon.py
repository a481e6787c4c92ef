"""Calls a step can walk away from: an LLM or HTTP call, or a Python tool, runs on a helper
thread while the step's thread watches its StepContext.

- When the attempt is cancelled (its lease is gone: the kill switch interrupted it, the run
  was cancelled, or a newer attempt took over), the step stops waiting at once and fails
  as cancelled.
- When the attempt's deadline passes (the step's timeout), the step stops waiting and fails
  as transient, so it is retried as the builder promises.
In both cases the call's thread is left to end on its own, and whatever it returns is
dropped (an abandoned LLM call is charged what was reserved for it: see
budgets.guard.Meter). A tool that uses the database gets a connection of its own on that
thread, closed when the call ends.
"""

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from vectorbea.steps.registry import StepContext, abandoned

POLL_SECONDS = 0.1


def abandonable[T](ctx: StepContext, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, unless `ctx` is cancelled first (StepError CANCELLED) or its deadline
    passes first (StepError TRANSIENT)."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # handed to the step's thread as it is
            outcome["error"] = exc
        finally:
            connection.close()  # this thread's own, if the call opened one
            done.set()

    context = contextvars.copy_context()  # its log lines still name the step
    threading.Thread(
        target=context.run, args=(target,), name=f"call-{ctx.step_id}", daemon=True
    ).start()
    while not done.wait(_wait(ctx)):
        if ctx.is_cancelled or (ctx.deadline is not None and time.monotonic() >= ctx.deadline):
            raise abandoned(ctx)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _wait(ctx: StepContext) -> float:
    if ctx.deadline is None:
        return POLL_SECONDS
    return max(0.0, min(POLL_SECONDS, ctx.deadline - time.monotonic()))
