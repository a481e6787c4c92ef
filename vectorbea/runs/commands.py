"""The only writers of run history outside the executor: named, imperative actions."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import jsonschema
from django.db import IntegrityError, transaction

from vectorbea.approvals import projection as gates
from vectorbea.engine import (
    APPROVAL_KIND,
    ApprovalDenied,
    ApprovalGranted,
    Event,
    OutputCorrected,
    RetryScheduled,
    RunCancelled,
    RunPaused,
    RunResumed,
    RunStarted,
    RunState,
    StepCompleted,
    VectorbeaError,
)
from vectorbea.engine.state import STEP_WAITING
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.runs import scheduling
from vectorbea.runs.executor import MAX_CONFLICT_RETRIES, then_decide
from vectorbea.workflows.models import Workflow, WorkflowVersion


@dataclass(frozen=True)
class InputProblem:
    path: str
    message: str


class InvalidRunInput(VectorbeaError):
    def __init__(self, problems: list[InputProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class NotPublished(VectorbeaError):
    pass


def input_problems(schema: dict[str, Any], data: Any) -> list[InputProblem]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        InputProblem(
            path="input" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.path),
            message=e.message,
        )
        for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    ]


def start_run(
    workflow: Workflow,
    run_input: dict[str, Any],
    *,
    started_by: Any = None,
    idempotency_key: str | None = None,
    version: WorkflowVersion | None = None,
) -> Run:
    """Start a run on `version` (default: the newest published one).

    With an idempotency key, the same key in the same workspace returns the same run."""
    version = version or workflow.latest_version()
    if version is None:
        raise NotPublished(f"Workflow {workflow.name!r} has no published version yet.")
    schema = version.definition.get("input_schema") or {"type": "object"}
    problems = input_problems(schema, run_input)
    if problems:
        raise InvalidRunInput(problems)
    if idempotency_key:
        existing = Run.objects.filter(
            workspace_id=workflow.workspace_id, idempotency_key=idempotency_key
        ).first()
        if existing:
            return existing
    try:
        with transaction.atomic():
            run = Run.objects.create(
                workspace_id=workflow.workspace_id,
                workflow=workflow,
                version=version,
                idempotency_key=idempotency_key or None,
                started_by=started_by if getattr(started_by, "pk", None) else None,
            )
            definition = store.definition_for(version.id)
            started = RunStarted(
                workflow_id=str(workflow.id),
                version_id=str(version.id),
                input=run_input,
                started_by=getattr(started_by, "username", None),
            )
            appended = store.append(
                run.id,
                RunState.initial(),
                then_decide(definition, [started]),
                definition,
                now=store.db_now(),
                savepoint=False,  # a new run has no concurrent writer
            )
            gates.project_appended(run.id, appended, definition)  # same transaction
            for step_id, attempt in appended.started:
                scheduling.dispatch(run.id, step_id, attempt)
    except IntegrityError:
        if not idempotency_key:
            raise
        return Run.objects.get(workspace_id=workflow.workspace_id, idempotency_key=idempotency_key)
    return run


class ActionRefused(VectorbeaError):
    """An operator action that does not apply to the run as it is now (said plainly)."""


def act(run_id: UUID, facts_for: Callable[[store.Loaded], list[Event]]) -> store.Appended:
    """The one way an operator's action reaches a run: read it, turn the action into facts
    (or refuse it with ActionRefused), append the facts with decide()'s consequences, and
    hand any step that started to a worker. A concurrent writer makes it read again."""
    for _ in range(MAX_CONFLICT_RETRIES):
        loaded = store.load(run_id)
        facts = facts_for(loaded)
        try:
            with transaction.atomic():  # the inbox's gate rows commit with the events
                appended = store.append(
                    run_id,
                    loaded.state,
                    then_decide(loaded.definition, facts),
                    loaded.definition,
                    now=loaded.clock.now(),
                )
                gates.project_appended(run_id, appended, loaded.definition)
        except store.ConcurrencyConflict:
            continue
        for step_id, attempt in appended.started:
            scheduling.dispatch(run_id, step_id, attempt)
        return appended
    raise store.ConcurrencyConflict(run_id, 0)


def _running(loaded: store.Loaded, action: str) -> None:
    if loaded.state.is_terminal:
        raise ActionRefused(f"The run has {loaded.state.status}; it cannot be {action}.")


def cancel_run(run_id: UUID, *, actor: str | None, reason: str = "Cancelled") -> bool:
    """Cancel a run: in-flight attempts lose their leases and their results are refused.
    Returns False if the run had already finished."""

    def facts(loaded: store.Loaded) -> list[Event]:
        _running(loaded, "cancelled")
        return [RunCancelled(actor, reason)]

    try:
        act(run_id, facts)
    except ActionRefused:
        return False
    return True


def pause_run(run_id: UUID, *, actor: str, reason: str = "") -> None:
    """Steps already running finish; no new step starts until the run is resumed."""

    def facts(loaded: store.Loaded) -> list[Event]:
        _running(loaded, "paused")
        if loaded.state.paused:
            raise ActionRefused("The run is already paused.")
        return [RunPaused(actor, reason)]

    act(run_id, facts)


def resume_run(run_id: UUID, *, actor: str) -> None:
    def facts(loaded: store.Loaded) -> list[Event]:
        _running(loaded, "resumed")
        if not loaded.state.paused:
            raise ActionRefused("The run is not paused.")
        return [RunResumed(actor)]

    act(run_id, facts)


def retry_failed_step(run_id: UUID, *, actor: str) -> str:
    """Retry from the failed step: the same RetryScheduled an automatic retry appends, due
    now, reopening the failed run. Returns the step's id."""

    def facts(loaded: store.Loaded) -> list[Event]:
        state = loaded.state
        step_id = state.failed_step_id
        if state.status != "failed" or step_id is None:
            raise ActionRefused("Only a run that failed at a step can be retried from it.")
        step = state.step(step_id)
        now = loaded.clock.now().isoformat()
        return [RetryScheduled(step_id, step.attempt + 1, now, 0.0, "manual", actor=actor)]

    return act(run_id, facts).events[0].event.step_id


def rerun(run_id: UUID, *, started_by: Any) -> Run:
    """A new run of the same workflow's newest version with the same input."""
    run = Run.objects.select_related("workflow").get(pk=run_id)
    state = store.load(run_id).state
    return start_run(run.workflow, dict(state.input or {}), started_by=started_by)


def correct_output(run_id: UUID, step_id: str, output: Any, *, actor: str, reason: str) -> int:
    """Fix a wrongly recorded step output without editing history: append OutputCorrected.
    Returns the seq of the correcting event."""

    def facts(loaded: store.Loaded) -> list[Event]:
        if loaded.state.step(step_id).status != "completed":
            raise ActionRefused(f"Step {step_id!r} has no completed output to correct.")
        wrong = _completion_seq(run_id, step_id)
        return [OutputCorrected(step_id, output, wrong, actor, reason)]

    return act(run_id, facts).events[0].seq


def _completion_seq(run_id: UUID, step_id: str) -> int:
    seqs = [
        r.seq
        for r in store.read_events(run_id)
        if isinstance(r.event, StepCompleted | OutputCorrected) and r.event.step_id == step_id
    ]
    return seqs[-1]


class GateNotWaiting(ActionRefused):
    """An approval decision for a gate that is not (or no longer) waiting for one."""


class NotAnApprover(ActionRefused):
    """The person may not decide this gate (not an approver, their own run, already
    approved)."""


DeciderCheck = Callable[[store.Loaded, str], None]


def decide_gate(
    run_id: UUID,
    step_id: str,
    *,
    approve: bool,
    actor: str,
    reason: str = "",
    fields: dict[str, Any] | None = None,
    gate: str | None = None,
    check: DeciderCheck | None = None,
) -> int:
    """Approve or deny a waiting approval gate, and move the run on in the same append.

    Two people deciding at once: exactly one wins; the other re-reads and is told who
    decided and when (GateNotWaiting). A decision arriving after the gate's deadline loses
    to the timeout, which is recorded first. `gate` is the opening the person saw (a gate
    reopened since refuses it); `check(loaded, step_id)` says whether this person may
    decide (raises NotAnApprover), on the very state the decision is appended to.
    Returns the seq of the decision event."""
    if not actor:
        raise ValueError("A decision needs the name of the person who made it")

    for _ in range(3):  # at most: the deadline passes, the gate escalates, then a verdict
        decision = _Decision(step_id, approve, actor, reason, dict(fields or {}), gate, check)
        appended = act(run_id, decision.facts)
        if not decision.deadline_first:
            return appended.events[0].seq
        gate = None  # the same gate, escalated: judge the decision against its new rules
    raise GateNotWaiting("The approval changed while deciding; reload it and try again.")


@dataclass
class _Decision:
    step_id: str
    approve: bool
    actor: str
    reason: str
    fields: dict[str, Any]
    gate: str | None
    check: DeciderCheck | None
    deadline_first: bool = False

    def facts(self, loaded: store.Loaded) -> list[Event]:
        step_id = self.step_id
        self.deadline_first = False
        if self.check is not None:
            self.check(loaded, step_id)
        _check_gate_waiting(loaded, step_id, self.gate)
        step = loaded.state.step(step_id)
        if _past_deadline(loaded, step.wait_until):
            self.deadline_first = True
            return []  # decide() records the timeout's verdict or escalation
        gate = step.gate or {}
        key = gate.get("key", "")
        if not self.approve:
            return [ApprovalDenied(step_id, self.actor, self.reason, self.fields, key)]
        if any(grant.get("by") == self.actor for grant in gate.get("grants", ())):
            raise NotAnApprover("You have already approved; it needs other people too.")
        return [ApprovalGranted(step_id, self.actor, self.reason, self.fields, key)]


def _past_deadline(loaded: store.Loaded, wait_until: str | None) -> bool:
    if wait_until is None or loaded.state.paused:  # a paused run's timeouts wait too
        return False
    return datetime.fromisoformat(wait_until) <= loaded.clock.now()


def _check_gate_waiting(loaded: store.Loaded, step_id: str, gate: str | None = None) -> None:
    step_def = loaded.definition.steps.get(step_id)
    if step_def is None:
        raise GateNotWaiting(f"Run {loaded.run_id} has no step {step_id!r}.")
    if step_def.kind != APPROVAL_KIND:
        raise GateNotWaiting(f"Step '{step_def.name}' is not an approval step.")
    step = loaded.state.step(step_id)
    if step.decision is not None:
        decision = step.decision
        verdict = "approved" if decision.get("approved") else "denied"
        who = (
            "automatically at its timeout"
            if decision.get("timed_out")
            else (f"by {decision.get('by')}")
        )
        raise GateNotWaiting(
            f"Approval '{step_def.name}' was already {verdict} {who} at {decision.get('at')}."
        )
    if loaded.state.is_terminal:
        raise GateNotWaiting(
            f"The run is {loaded.state.status}; approval '{step_def.name}' can no longer be "
            "decided."
        )
    if step.status != STEP_WAITING:
        raise GateNotWaiting(
            f"Approval '{step_def.name}' is not waiting for a decision (it is {step.status})."
        )
    if gate and (step.gate or {}).get("key", gate) != gate:
        raise GateNotWaiting(
            f"Approval '{step_def.name}' was asked again since you opened it; reload it to see "
            "what it asks now."
        )
