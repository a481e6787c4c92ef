"""Counters from the events every append records, so they agree with the log by construction.

`count_appended` is an after-commit hook of the event log (vectorbea.eventlog.hooks): it
runs after the commit of each append, in the process that appended, on the workers' hot
path. The store hands it the run's state before the append and the definition the events
were decided with, so it does no I/O (but for reading a version the run is moved to, which
the command that moved it has already cached). If it raises, the store logs it.

A step's latency is the time from its attempt's start (StepStarted, or StepWaiting and
ApprovalRequested for the steps the engine parks) to its outcome (StepCompleted,
StepFailed), both as recorded in the log: one clock, and it includes waiting for a worker.

The hook only tallies in memory: `TALLY` writes to prometheus_client's files (a lock, a
pid check and a write to a mapped file per figure, eight figures a step) from a thread of
its own every FLUSH_SECONDS, and /metrics writes its own process's tally before reading.
A process killed outright (SIGKILL) loses the counts of its last FLUSH_SECONDS.
"""

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ObjectDoesNotExist
from prometheus_client import Counter, Histogram

from vectorbea.engine import (
    ApprovalRequested,
    AttentionResolved,
    Definition,
    ErrorClass,
    Recorded,
    RunQueued,
    RunState,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepStarted,
    StepWaiting,
)
from vectorbea.engine.state import STEP_RUNNING, STEP_WAITING
from vectorbea.engine.waits import LIMIT_WAIT_REASONS
from vectorbea.eventlog.hooks import Change

log = logging.getLogger(__name__)

UNKNOWN_KIND = "unknown"
# Step latencies run from milliseconds (a transform) to hours (a person's approval).
DURATION_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    *(60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, float("inf")),
)

EVENTS_APPENDED = Counter(
    "vectorbea_events_appended", "Events appended to run logs, by event type.", ["type"]
)
STEPS_STARTED = Counter(
    "vectorbea_steps_started",
    "Step attempts started, by step kind (StepStarted; StepWaiting or ApprovalRequested for "
    "a delay or an approval gate). An attempt a limit deferred counts once.",
    ["kind"],
)
STEPS_COMPLETED = Counter(
    "vectorbea_steps_completed", "Step attempts completed, by step kind.", ["kind"]
)
STEPS_FAILED = Counter(
    "vectorbea_steps_failed",
    "Step attempts failed, by step kind and error class.",
    ["kind", "error_class"],
)
BUDGET_REJECTIONS = Counter(
    "vectorbea_budget_rejections",
    "Step attempts and runs a workspace limit held back, by reason: budget_exceeded (the "
    "attempt failed: a budget is spent); rate_limited or budget (the attempt waits); "
    "concurrency (the run waits for a place).",
    ["reason"],
)
STEP_DURATION = Histogram(
    "vectorbea_step_duration_seconds",
    "From a step attempt's recorded start to its recorded outcome, by kind and outcome.",
    ["kind", "outcome"],
    buckets=DURATION_BUCKETS,
)

# A labelled series, looked up once per process: labels() costs as much as the increment.
_SERIES: dict[tuple[Any, tuple[str, ...]], Any] = {}


def series(metric: Any, *labels: str) -> Any:
    found = _SERIES.get((metric, labels))
    if found is None:
        found = _SERIES[metric, labels] = metric.labels(*labels)
    return found


FLUSH_SECONDS = 0.25
Figure = tuple[Any, tuple[str, ...]]  # (metric, label values)


class Tally:
    """This process's counts and observations since they were last written out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Figure, int] = {}
        self._observed: list[tuple[Figure, float]] = []
        self._pid = 0
        self._wake = threading.Event()

    def add(self, counts: dict[Figure, int], observed: list[tuple[Figure, float]]) -> None:
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            for figure, amount in counts.items():
                self._counts[figure] = self._counts.get(figure, 0) + amount
            self._observed += observed

    def flush(self) -> None:
        """Write what was tallied to this process's metrics files."""
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, []
        for (metric, labels), amount in counts.items():
            series(metric, *labels).inc(amount)
        for (metric, labels), value in observed:
            series(metric, *labels).observe(value)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._counts, self._observed = {}, []  # a forked child's copy is its parent's
        threading.Thread(target=self._run, name="metrics-tally", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while not self._wake.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # e.g. the metrics directory went away: try again later
                log.exception("Writing metrics failed")


TALLY = Tally()


STARTS = (StepStarted, StepWaiting, ApprovalRequested)
OUTCOMES = {StepCompleted: "completed", StepFailed: "failed"}
# A step in one of these has an open attempt, started at its started_at.
OPEN = frozenset({STEP_RUNNING, STEP_WAITING})


def count_appended(change: Change) -> None:
    """The after-commit hook: count the events an append recorded."""
    if change.events:
        count(RunContext(change.definition, change.before.last_seq, change.before), change.events)


@dataclass
class RunContext:
    """What labelling a run's events needs, as of event `last_seq`: its definition, and when
    each step's open attempt started. Those come from `before` (the run's state as of
    `last_seq`), read only for the steps an outcome is counted for, unless `starts`
    (step_id: (attempt, at), or None once the attempt ended) has them from later events."""

    definition: Definition | None
    last_seq: int
    before: RunState | None = None
    starts: dict[str, tuple[int, datetime] | None] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)  # step_id: attempt, in this batch

    def resumes(self, event: StepStarted) -> bool:
        """Whether `event` makes again an attempt a limit deferred: a wait, and the attempt
        is counted once."""
        if event.step_id in self.deferred:
            return self.deferred.pop(event.step_id) == event.attempt
        step = self.before.step(event.step_id) if self.before else None
        return (
            step is not None
            and step.status == STEP_WAITING
            and step.wait_reason in LIMIT_WAIT_REASONS
            and step.attempt + 1 == event.attempt
        )

    def kind(self, step_id: str) -> str:
        step = self.definition.steps.get(step_id) if self.definition else None
        return step.kind if step else UNKNOWN_KIND

    def end(self, step_id: str) -> tuple[int, datetime] | None:
        """The (attempt, start) of the step's open attempt, which ends here."""
        if step_id in self.starts:
            start = self.starts[step_id]
        else:
            step = self.before.step(step_id) if self.before else None
            start = None
            if step is not None and step.status in OPEN and step.started_at is not None:
                start = (step.attempt, step.started_at)
        self.starts[step_id] = None
        return start


def count(run: RunContext, recorded: Sequence[Recorded]) -> None:
    """Count `recorded` (which follows `run.last_seq`) and move `run` past it."""
    counts: dict[Figure, int] = {}
    observed: list[tuple[Figure, float]] = []

    def inc(metric: Any, *labels: str) -> None:
        counts[metric, labels] = counts.get((metric, labels), 0) + 1

    for r in recorded:
        event = r.event
        inc(EVENTS_APPENDED, type(event).__name__)
        if isinstance(event, STARTS):
            if not (isinstance(event, StepStarted) and run.resumes(event)):
                inc(STEPS_STARTED, run.kind(event.step_id))
            run.starts[event.step_id] = (event.attempt, r.at)
        elif isinstance(event, StepCompleted | StepFailed):
            kind = run.kind(event.step_id)
            if isinstance(event, StepCompleted):
                inc(STEPS_COMPLETED, kind)
            else:
                inc(STEPS_FAILED, kind, event.error_class)
                if event.error_class == ErrorClass.BUDGET_EXCEEDED:
                    inc(BUDGET_REJECTIONS, event.error_class)
            start = run.end(event.step_id)
            if start is not None and start[0] == event.attempt:
                seconds = max(0.0, (r.at - start[1]).total_seconds())
                observed.append(((STEP_DURATION, (kind, OUTCOMES[type(event)])), seconds))
        elif isinstance(event, StepDeferred):
            inc(BUDGET_REJECTIONS, event.reason)
            run.starts[event.step_id] = None
            run.deferred[event.step_id] = event.attempt
        elif isinstance(event, RunQueued):
            inc(BUDGET_REJECTIONS, "concurrency")
        elif isinstance(event, StepInterrupted):
            run.starts[event.step_id] = None
        elif isinstance(event, AttentionResolved) and event.version_id:
            run.definition = _definition(event.version_id)
    run.last_seq = recorded[-1].seq
    TALLY.add(counts, observed)


def _definition(version_id: str | UUID) -> Definition | None:
    from vectorbea.eventlog.store import definition_for

    try:
        return definition_for(UUID(str(version_id)))
    except (ValueError, ObjectDoesNotExist):  # hand-made test logs name versions "v1"
        return None
