"""What people (and the API, webhooks and schedules acting for them) do to runs: named,
imperative actions. Each one says what happened as facts and hands them to the event
log's record(), the one write path."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid4

import jsonschema
from django.db import IntegrityError

from vectorbea.budgets import admission
from vectorbea.engine import (
    APPROVAL_KIND,
    ApprovalDenied,
    ApprovalGranted,
    AttentionResolved,
    Event,
    OutputCorrected,
    RetryScheduled,
    RunCancelled,
    RunFailed,
    RunPaused,
    RunQueued,
    RunResumed,
    RunStarted,
    RunState,
    StepCompleted,
    VectorbeaError,
    json_problem,
    validate_definition,
)
from vectorbea.engine.agent import AGENT_KIND
from vectorbea.engine.state import STEP_WAITING
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.eventlog.record import MAX_CONFLICT_RETRIES, record
from vectorbea.workflows.models import Workflow, WorkflowVersion


@dataclass(frozen=True)
class InputProblem:
    path: str
    message: str


class InvalidRunInput(VectorbeaError):
    def __init__(self, problems: list[InputProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class CannotStart(VectorbeaError):
    """A run that may not start now, said plainly."""


class NotPublished(CannotStart):
    pass


class WorkflowArchived(CannotStart):
    """An archived workflow starts no runs until it is restored."""


class WorkspaceStopped(CannotStart):
    """The workspace's kill switch is thrown: no run starts until it is turned off."""


def stopped_message(stop: store.Stop) -> str:
    """The kill switch, said plainly to the person it stops."""
    why = f" ({stop.reason})" if stop.reason else ""
    return (
        f"Runs are stopped in this workspace{why}: an admin threw the kill switch. "
        "Nothing starts until it is turned off on the Limits page."
    )


DEFAULT_LIMITS = {"max_steps": 1000, "max_attempts": 10}


@dataclass(frozen=True)
class _Head:
    """What starting a run needs to know first: the version it runs (and its number), and
    the workspace's runaway guards as stored (None: the default)."""

    version_id: UUID
    version_number: int
    max_steps: int | None
    max_attempts: int | None

    @property
    def limits(self) -> dict[str, int]:
        return {
            "max_steps": self.max_steps or DEFAULT_LIMITS["max_steps"],
            "max_attempts": self.max_attempts or DEFAULT_LIMITS["max_attempts"],
        }


# Each process remembers the head it last read per (workspace, workflow, version asked
# for); the run's first append checks it is still true (HEAD_GUARD), so it is never
# trusted stale: a refused start reads it again.
_heads: dict[tuple[UUID, UUID, UUID | None], _Head] = {}
LATEST = 2**31 - 1  # "no version is newer": the guard of a start on a version asked for

# The guard of a run's first append: the workspace is not stopped and the remembered
# head still holds (see vectorbea_may_start, eventlog migrations 0010 and 0011, for how
# it reads the kill switch after taking a share lock on the workspace row).
HEAD_GUARD = (
    "SELECT 1 WHERE vectorbea_may_start(%s::uuid, %s::integer, %s::integer, %s::uuid, %s::integer)"
)


def _read_head(workflow: Workflow, version: WorkflowVersion | None) -> _Head:
    """The version (the one asked for, or the newest published) and the workspace's
    runaway guards. Raises NotPublished."""
    with store.prepared_cursor() as cursor:
        cursor.execute(
            "SELECT v.id, v.number, l.max_steps_per_run, "
            "l.max_attempts_per_step FROM accounts_workspace w "
            "LEFT JOIN budgets_workspacelimits l ON l.workspace_id = w.id "
            "LEFT JOIN LATERAL (SELECT id, number FROM workflows_workflowversion "
            "  WHERE workflow_id = %s::uuid AND (%s::uuid IS NULL OR id = %s::uuid) "
            "  ORDER BY number DESC LIMIT 1) v ON true "
            "WHERE w.id = %s::uuid",
            [workflow.id, *([version.id if version else None] * 2), workflow.workspace_id],
            prepare=True,
        )
        version_id, number, max_steps, max_attempts = cursor.fetchone()
    if version_id is None:
        raise NotPublished(f"Workflow {workflow.name!r} has no published version yet.")
    head = _Head(version_id, number, max_steps, max_attempts)
    if len(_heads) > 10_000:
        _heads.clear()
    _heads[workflow.workspace_id, workflow.id, version.id if version else None] = head
    return head


def input_problems(schema: dict[str, Any], data: Any) -> list[InputProblem]:
    return _problems(jsonschema.Draft202012Validator(schema), data)


@lru_cache(maxsize=1024)
def _input_validator(version_id: UUID) -> jsonschema.protocols.Validator:
    """Versions are immutable: their input validators are built once per process."""
    return jsonschema.Draft202012Validator(store.definition_for(version_id).input_schema)


def _problems(validator: jsonschema.protocols.Validator, data: Any) -> list[InputProblem]:
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
    rerun_of: Run | None = None,
) -> Run:
    """Start a run on `version` (default: the newest published one); `rerun_of`: the run
    of the same workspace this one re-runs (its page links to it, and it lists this one).

    With an idempotency key, the same key in the same workspace returns the same run.
    One round trip on the lean path: the run's row and its first append (which starts its
    first steps), checked against the head this process remembers, in one transaction."""
    if workflow.archived_at is not None:
        raise WorkflowArchived(f"Workflow {workflow.name!r} is archived: restore it to start runs.")
    stored = json_problem(run_input, "The input")
    asked = version.id if version else None
    head = _heads.get((workflow.workspace_id, workflow.id, asked))
    for _ in range(MAX_CONFLICT_RETRIES):
        if head is None:
            head = _read_head(workflow, version)
        problems = _problems(_input_validator(head.version_id), run_input)
        if stored:  # e.g. a NUL character: Postgres cannot keep it in the first event
            problems.append(InputProblem("input", stored))
        if problems:
            raise InvalidRunInput(problems)
        if idempotency_key:
            existing = Run.objects.filter(
                workspace_id=workflow.workspace_id, idempotency_key=idempotency_key
            ).first()
            if existing:
                return existing
        try:
            origin = str(rerun_of.id) if rerun_of is not None else None
            return _start(workflow, head, run_input, started_by, idempotency_key, asked, origin)
        except store.StartRefused:  # the switch is thrown, or the head changed: read it
            stop = store.stop_of(workflow.workspace_id)
            if stop is not None:
                raise WorkspaceStopped(stopped_message(stop)) from None
            head = None
        except IntegrityError:
            if not idempotency_key:
                raise
            return Run.objects.get(
                workspace_id=workflow.workspace_id, idempotency_key=idempotency_key
            )
    raise store.ConcurrencyConflict(workflow.id, 0)


def _start(
    workflow: Workflow,
    head: _Head,
    run_input: dict[str, Any],
    started_by: Any,
    idempotency_key: str | None,
    asked: UUID | None,
    rerun_of: str | None = None,
) -> Run:
    definition = store.definition_for(head.version_id)
    run = Run(
        id=uuid4(),
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        version_id=head.version_id,
        idempotency_key=idempotency_key or None,
        started_by_id=getattr(started_by, "pk", None),
    )
    started = RunStarted(
        workflow_id=str(workflow.id),
        version_id=str(head.version_id),
        input=run_input,
        started_by=getattr(started_by, "username", None),
        limits=head.limits,
        via=getattr(started_by, "via", None),
        rerun_of=rerun_of,
    )
    new_run = store.NewRun(
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.id,
        version_id=head.version_id,
        idempotency_key=run.idempotency_key,
        started_by_id=run.started_by_id,
        guard=HEAD_GUARD,
        guard_params=(
            workflow.workspace_id,
            head.max_steps,
            head.max_attempts,
            workflow.id,
            LATEST if asked else head.version_number,
        ),
    )
    loaded = store.Loaded(
        run.id,
        workflow.workspace_id,
        head.version_id,
        RunState.initial(),
        definition,
        store.current_clock(),
    )
    with admission.place_for_start(workflow.workspace_id, workflow.id) as why_queued:
        facts: list[Event] = [started] if why_queued is None else [started, RunQueued(why_queued)]
        appended = record(run.id, lambda _: facts, loaded=loaded, new_run=new_run)
    run.created_at = appended.clock.db
    run._state.adding = False
    run._state.db = "default"
    return run


class ActionRefused(VectorbeaError):
    """An operator action that does not apply to the run as it is now (said plainly)."""


class RunsStopped(ActionRefused):
    """The action would start work in a workspace whose kill switch is on."""


def act(run_id: UUID, facts_for: Callable[[store.Loaded], list[Event]]) -> store.Appended:
    """The one way a person's action reaches a run: turn the action into facts on the run
    as it is now (or refuse it with ActionRefused) and record them with their
    consequences. A concurrent writer makes it read again; the kill switch refuses it
    when it would start work (RunsStopped)."""
    try:
        return record(run_id, facts_for, by_person=True)
    except store.KillSwitchOn as refused:
        raise RunsStopped(stopped_message(refused.stop)) from None


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
    now, reopening the failed run. At the gate of a denied run it asks again: the gate
    opens anew for a new decision. Returns the step's id."""

    def facts(loaded: store.Loaded) -> list[Event]:
        state = loaded.state
        if state.attention and not state.is_terminal:  # the step that needs attention
            step_id = sorted(state.attention)[0]
            return _retry_facts(loaded, step_id, actor, "", None, None)
        step_id = state.failed_step_id
        if state.status not in ("failed", "denied") or step_id is None:
            raise ActionRefused("Only a run that failed at a step can be retried from it.")
        return [_manual_retry(loaded, step_id, actor)]

    return act(run_id, facts).events[-1].event.step_id


def rerun(run_id: UUID, *, started_by: Any) -> Run:
    """A new run of the same workflow's newest version with the same input, recorded as a
    re-run of this one."""
    run = Run.objects.select_related("workflow").get(pk=run_id)
    state = store.load(run_id).state
    return start_run(run.workflow, dict(state.input or {}), started_by=started_by, rerun_of=run)


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
        check_gate_waiting(loaded, step_id, self.gate)
        step = loaded.state.step(step_id)
        if _past_deadline(loaded, step.wait_until):
            self.deadline_first = True
            return []  # decide() records the timeout's verdict or escalation
        gate = step.gate or {}
        key = gate.get("key", "")
        fields = self.fields
        if loaded.definition.steps[step_id].kind == AGENT_KIND:
            fields = _tool_call_fields(loaded, step_id, gate, fields, approving=self.approve)
        if not self.approve:
            return [ApprovalDenied(step_id, self.actor, self.reason, fields, key)]
        if any(grant.get("by") == self.actor for grant in gate.get("grants", ())):
            raise NotAnApprover("You have already approved; it needs other people too.")
        return [ApprovalGranted(step_id, self.actor, self.reason, fields, key)]


class BadArguments(ActionRefused):
    """An approver's edit of a tool call's arguments does not fit the tool."""


def _tool_call_fields(
    loaded: store.Loaded,
    step_id: str,
    gate: dict[str, Any],
    fields: dict[str, Any],
    *,
    approving: bool,
) -> dict[str, Any]:
    """An agent's tool call gate: the approver may edit the call's `arguments` (a JSON
    object, or its text from the inbox's form); an edit is checked against the tool's
    schema and kept only when approving and different from what the model asked."""
    from vectorbea.steps.agent_tools import argument_problem, tools_of

    payload = gate.get("payload") or {}
    edited = fields.get("arguments")
    if not approving or edited is None or edited == "":
        return {key: value for key, value in fields.items() if key != "arguments"}
    if isinstance(edited, str):
        try:
            edited = json.loads(edited)
        except ValueError as exc:
            raise BadArguments(f"The arguments are not valid JSON: {exc}") from None
    if edited == payload.get("arguments"):
        return {key: value for key, value in fields.items() if key != "arguments"}
    config = loaded.state.step(step_id).config or loaded.definition.steps[step_id].config
    tool = tools_of(config).get(str(payload.get("tool")))
    problem = "The tool is no longer offered." if tool is None else argument_problem(tool, edited)
    if problem:
        raise BadArguments(problem)
    return {**fields, "arguments": edited}


def _past_deadline(loaded: store.Loaded, wait_until: str | None) -> bool:
    if wait_until is None or loaded.state.paused:  # a paused run's timeouts wait too
        return False
    return datetime.fromisoformat(wait_until) <= loaded.clock.now()


def check_gate_waiting(loaded: store.Loaded, step_id: str, gate: str | None = None) -> None:
    step_def = loaded.definition.steps.get(step_id)
    if step_def is None:
        raise GateNotWaiting(f"Run {loaded.run_id} has no step {step_id!r}.")
    if step_def.kind not in (APPROVAL_KIND, AGENT_KIND):
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


# --- needs attention ----------------------------------------------------------------------------

RESOLUTIONS = ("retry", "supply_output", "skip", "fail")


def resolve_attention(
    run_id: UUID,
    step_id: str,
    action: str,
    *,
    actor: str,
    note: str = "",
    output: Any = None,
    config: dict[str, Any] | None = None,
    version: WorkflowVersion | None = None,
) -> store.Appended:
    """A person's answer to a step that needs attention, as events with their name:

    - "retry": the step runs again (a new round of attempts), optionally with new settings
      (`config`, checked against the step kind's schema) and on another version of the
      workflow (`version`); the retry is the same RetryScheduled every retry goes through.
    - "supply_output": `output` becomes the step's output and the run goes on.
    - "skip": the step is passed over (only where the workflow allows it).
    - "fail": the run fails, with the person's note as the reason.

    Raises ActionRefused (with a plain reason) when the action does not apply."""
    if action not in RESOLUTIONS:
        raise ActionRefused(f"Unknown resolution {action!r}.")
    note = (note or "").strip()[:2000]

    def facts(loaded: store.Loaded) -> list[Event]:
        state = loaded.state
        if state.is_terminal:
            raise ActionRefused(f"The run has {state.status}; there is nothing to resolve.")
        if step_id not in state.attention:
            raise ActionRefused("That step does not need attention (someone may have resolved it).")
        step_def = loaded.definition.steps[step_id]
        if action == "retry":
            return _retry_facts(loaded, step_id, actor, note, config, version)
        if action == "supply_output":
            return [_supplied(step_def, output, actor, note)]
        if action == "skip":
            if _chooses_a_path(step_def):
                raise ActionRefused(
                    f"Step '{step_def.name}' chooses a path; skipping it would leave the run "
                    "no path to follow. Retry it or fail the run."
                )
            if not step_def.allow_skip:
                raise ActionRefused(
                    f"Step '{step_def.name}' may not be skipped: the workflow does not allow it. "
                    "Retry it, supply its output or fail the run."
                )
            return [AttentionResolved(step_id, "skip", actor, note)]
        reason = f"{actor} failed the run at step '{step_def.name}'"
        reason += f": {note}" if note else "."
        return [AttentionResolved(step_id, "fail", actor, note), RunFailed(reason, step_id)]

    return act(run_id, facts)


def _retry_facts(
    loaded: store.Loaded,
    step_id: str,
    actor: str,
    note: str,
    config: dict[str, Any] | None,
    version: WorkflowVersion | None,
) -> list[Event]:
    version_id = None
    definition = loaded.definition
    if version is not None and str(version.id) != str(loaded.version_id):
        definition = _switchable(loaded, version)
        version_id = str(version.id)
    if step_id not in definition.steps:
        raise ActionRefused(f"The chosen version has no step {step_id!r}.")
    if config is not None:
        _check_step_config(definition.steps[step_id], config)
    return [
        AttentionResolved(step_id, "retry", actor, note, config=config, version_id=version_id),
        _manual_retry(loaded, step_id, actor),
    ]


def _manual_retry(loaded: store.Loaded, step_id: str, actor: str) -> RetryScheduled:
    """A person's retry of a step: the same RetryScheduled an automatic retry appends,
    due now, with their name (it starts a new round of attempts)."""
    next_attempt = loaded.state.step(step_id).attempt + 1
    return RetryScheduled(
        step_id, next_attempt, loaded.clock.now().isoformat(), 0.0, "manual", actor=actor
    )


def _switchable(loaded: store.Loaded, version: WorkflowVersion) -> Any:
    """The definition of `version`, if the run may move to it: the same workflow, and every
    step the run has reached is still there, as the same kind."""
    if str(version.workflow_id) != str(loaded.state.workflow_id):
        raise ActionRefused("That version belongs to another workflow.")
    definition = store.definition_for(version.id)
    for step_id in loaded.state.steps:
        new = definition.steps.get(step_id)
        old = loaded.definition.steps.get(step_id)
        if new is None or (old is not None and new.kind != old.kind):
            raise ActionRefused(
                f"Version {version.number} cannot take over this run: step '{step_id}', which "
                "the run has already reached, is missing or of another kind there."
            )
    return definition


def _check_step_config(step_def: Any, config: Any) -> None:
    """The settings a person gave a step, checked as the builder checks them on publish."""
    from vectorbea.steps.registry import kind_specs

    if not isinstance(config, dict):
        raise ActionRefused("The step's settings must be a JSON object.")
    problem = json_problem(config, "The step's settings", max_bytes=256_000)
    if problem:
        raise ActionRefused(problem)
    spec = kind_specs()[step_def.kind]
    step = {"id": step_def.id, "kind": step_def.kind, "name": step_def.name, "config": config}
    issues = validate_definition({"steps": [step], "edges": []}, {step_def.kind: spec})
    if issues:
        raise ActionRefused("; ".join(issue.message for issue in issues[:3]))


def _chooses_a_path(step_def: Any) -> bool:
    """A branch or an approval: its outcome picks which edges the run follows."""
    from vectorbea.steps.registry import kind_specs

    spec = kind_specs().get(step_def.kind)
    return spec is not None and spec.ports is not None


def _supplied(step_def: Any, output: Any, actor: str, note: str) -> AttentionResolved:
    if _chooses_a_path(step_def):
        raise ActionRefused(
            f"Step '{step_def.name}' chooses a path; its output cannot be supplied by hand. "
            "Retry it or fail the run."
        )
    problem = json_problem(output, "The output", max_bytes=1_000_000)
    if problem:
        raise ActionRefused(problem)
    return AttentionResolved(step_def.id, "supply_output", actor, note, output=output)


@dataclass(frozen=True)
class BulkOutcome:
    run_id: UUID
    ok: bool
    message: str


def retry_attention_runs(
    run_ids: list[UUID], *, actor: str, newest_version: bool = True
) -> list[BulkOutcome]:
    """Retry the failed step of each run that needs attention, on its workflow's newest
    published version when `newest_version`. Each run is its own action: one refusal does
    not stop the others."""
    outcomes = []
    for run_id in run_ids:
        try:
            loaded = store.load(run_id)
            if not loaded.state.attention:
                raise ActionRefused("It does not need attention.")
            version = None
            if newest_version:
                workflow = Workflow.objects.get(pk=loaded.state.workflow_id)
                version = workflow.latest_version()
            for step_id in sorted(loaded.state.attention):
                resolve_attention(run_id, step_id, "retry", actor=actor, version=version)
                version = None  # the run is on it now
        except (ActionRefused, LookupError) as exc:
            outcomes.append(BulkOutcome(run_id, False, str(exc)))
        else:
            outcomes.append(BulkOutcome(run_id, True, "Retrying."))
    return outcomes
