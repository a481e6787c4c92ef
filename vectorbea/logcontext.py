"""Which step a log line belongs to: every line emitted while a step attempt runs (by the
engine, a step kind, a provider SDK or your tool) carries its run id, step id and attempt.

`step_scope()` is entered by the executor around each attempt; `StepContextFilter` adds
the fields to every record (empty outside a step). With LOG_FORMAT=json each line is one
JSON object with them as keys; the plain format appends "[run … step … attempt …]".
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_STEP: ContextVar[dict[str, Any] | None] = ContextVar("vectorbea_step", default=None)


@contextmanager
def step_scope(run_id: Any, step_id: str, attempt: int) -> Iterator[None]:
    token = _STEP.set({"run_id": str(run_id), "step_id": step_id, "attempt": attempt})
    try:
        yield
    finally:
        _STEP.reset(token)


class StepContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        step = _STEP.get()
        record.run_id = step["run_id"] if step else ""
        record.step_id = step["step_id"] if step else ""
        record.attempt = step["attempt"] if step else ""
        return True


class PlainFormatter(logging.Formatter):
    """The plain format, with "[run … step … attempt …]" on lines emitted during a step."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if getattr(record, "run_id", ""):
            text += f" [run {record.run_id} step {record.step_id} attempt {record.attempt}]"
        return text
