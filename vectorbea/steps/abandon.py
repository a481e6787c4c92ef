"""Calls a step can walk away from: an LLM or HTTP call runs on a helper thread while the
step's thread watches its StepContext. When the attempt is cancelled (its lease is gone:
the kill switch interrupted it, the run was cancelled, or a newer attempt took over), the
step stops waiting at once and fails as cancelled; the call's thread is left to end on its
own timeout, and whatever it returns is dropped (an abandoned LLM call is charged what was
reserved for it: see budgets.guard.Meter).

The function must not use the database (a helper thread has no connection of its own).
"""

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps.registry import StepContext

POLL_SECONDS = 0.1


def abandonable[T](ctx: StepContext, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, unless `ctx` is cancelled first: then StepError(CANCELLED)."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # handed to the step's thread as it is
            outcome["error"] = exc
        finally:
            done.set()

    context = contextvars.copy_context()  # its log lines still name the step
    threading.Thread(
        target=context.run, args=(target,), name=f"call-{ctx.step_id}", daemon=True
    ).start()
    while not done.wait(POLL_SECONDS):
        if ctx.is_cancelled:
            raise StepError(
                ErrorClass.CANCELLED,
                "The call was abandoned: the step was interrupted while it waited for an answer.",
            )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
