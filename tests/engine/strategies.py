"""Hypothesis strategies for random workflows and simulated executions.

Reusable outside the engine tests: ``simulated_runs()`` yields a definition (as JSON) and the
full event log of one simulated execution, e.g. to append to the real event store and compare
the projection with ``fold`` and with checkpoint + tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.engine.builders import KINDS, T0
from vectorbea.engine import (
    ApprovalDenied,
    ApprovalGranted,
    AttentionResolved,
    Definition,
    Event,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunFailed,
    RunStarted,
    RunState,
    StepCompleted,
    StepFailed,
    apply,
    decide,
    next_wake_at,
)

BRANCH_PORT_NAMES = ("yes", "no", "maybe")
MAX_ROUNDS = 5_000

__all__ = [
    "KINDS",
    "SimulationStuck",
    "retry_policies",
    "simulate",
    "simulated_runs",
    "workflows",
]


class SimulationStuck(AssertionError):
    """The run stopped moving without reaching a terminal status."""


@st.composite
def retry_policies(draw: st.DrawFn) -> dict[str, Any]:
    initial = draw(st.floats(0.5, 10))
    return {
        "maximum_attempts": draw(st.integers(1, 4)),
        "initial_interval_seconds": initial,
        "backoff_coefficient": draw(st.floats(1, 3)),
        "maximum_interval_seconds": draw(st.floats(initial, 120)),
        "jitter": draw(st.floats(0, 0.5)),
    }


@st.composite
def workflows(draw: st.DrawFn, max_steps: int = 8) -> dict[str, Any]:
    """A valid definition (JSON) of a random DAG of noop, branch, delay and approval steps."""
    count = draw(st.integers(1, max_steps))
    steps = [_random_step(draw, index) for index in range(count)]
    entries = 1 if count <= 2 else draw(st.integers(1, 2))
    edges: list[dict[str, Any]] = []
    for target in range(entries, count):
        parents = draw(st.lists(st.integers(0, target - 1), min_size=1, max_size=3, unique=True))
        edges += [_random_edge(draw, steps[parent], target) for parent in sorted(parents)]
    for entry in range(entries if count > 1 else 0):  # every entry step must lead somewhere
        if not any(e["source"] == f"s{entry}" for e in edges):
            edges.append(_random_edge(draw, steps[entry], draw(st.integers(entries, count - 1))))
    return {"input_schema": {"type": "object", "properties": {}}, "steps": steps, "edges": edges}


def _random_step(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["noop", "noop", "branch", "delay", "approval"]))
    config: dict[str, Any] = {}
    if kind == "branch":
        ports = draw(st.lists(st.sampled_from(BRANCH_PORT_NAMES), min_size=1, unique=True))
        config = {"ports": ports}
    if kind == "delay":
        config = {"seconds": draw(st.integers(1, 3600))}
    if kind == "approval":
        config = {
            "title": f"Gate {index}",
            "on_timeout": draw(st.sampled_from(["deny", "approve"])),
        }
        if draw(st.booleans()):
            config["timeout_seconds"] = draw(st.integers(1, 86400))
    return {
        "id": f"s{index}",
        "kind": kind,
        "name": f"Step {index}",
        "config": config,
        "retry": draw(retry_policies()),
        "timeout_seconds": 60,
    }


def _random_edge(draw: st.DrawFn, source: dict[str, Any], target: int) -> dict[str, Any]:
    port = None
    if source["kind"] == "branch":
        port = draw(st.sampled_from(source["config"]["ports"]))
    if source["kind"] == "approval":
        port = draw(st.sampled_from([None, "approved", "denied"]))
    return {"source": source["id"], "target": f"s{target}", "port": port}


@dataclass
class _Choices:
    """Feeds a simulation from a list of drawn integers; 0 once the list runs out."""

    values: Sequence[int]
    position: int = 0

    def pick(self, options: int) -> int:
        value = self.values[self.position] if self.position < len(self.values) else 0
        self.position += 1
        return value % options


@dataclass
class _Simulation:
    definition: Definition
    choices: _Choices
    now: datetime
    state: RunState = field(default_factory=RunState.initial)
    log: list[Recorded] = field(default_factory=list)

    def append(self, events: Sequence[Event]) -> None:
        for event in events:
            recorded = Recorded(len(self.log) + 1, self.now, event)
            self.log.append(recorded)
            self.state = apply(self.state, recorded)


def simulate(
    definition: Definition,
    choices: Sequence[int],
    start: datetime = T0,
    run_input: dict[str, Any] | None = None,
) -> list[Recorded]:
    """Drive a run to a terminal status the way workers would, choosing outcomes from
    ``choices``: call decide, append its events, finish one running step (complete, fail
    with some error class, correct an output, or cancel the run), or decide an open
    approval gate as a person would, advance the clock."""
    sim = _Simulation(definition, _Choices(choices), start)
    sim.append([RunStarted("wf", "v1", run_input or {}, started_by="simulator")])
    for _ in range(MAX_ROUNDS):
        sim.append(decide(sim.state, definition, sim.now))
        if sim.state.is_terminal:
            return sim.log
        _advance(sim)
    raise SimulationStuck(f"run did not finish in {MAX_ROUNDS} rounds")


def _resolve(sim: _Simulation, step_id: str) -> None:
    choice = sim.choices.pick(3)
    if choice == 0:
        sim.append([AttentionResolved(step_id, "supply_output", "alice", output={"by": "hand"})])
    elif choice == 1:
        sim.append(
            [
                AttentionResolved(step_id, "fail", "alice"),
                RunFailed(f"Failed by alice at step {step_id}", step_id=step_id),
            ]
        )
    else:
        attempt = sim.state.step(step_id).attempt + 1
        retry = RetryScheduled(step_id, attempt, sim.now.isoformat(), 0.0, "manual", "alice")
        sim.append([AttentionResolved(step_id, "retry", "alice"), retry])


def _advance(sim: _Simulation) -> None:
    running = sim.state.running_steps()
    if running:
        step_id = running[sim.choices.pick(len(running))]
        sim.append(_outcome(sim, step_id))
        sim.now += timedelta(seconds=1 + sim.choices.pick(5))
        return
    if sim.state.attention:  # a person resolves a step that needs attention
        _resolve(sim, sorted(sim.state.attention)[0])
        sim.now += timedelta(seconds=1 + sim.choices.pick(5))
        return
    wake = next_wake_at(sim.state, sim.definition, sim.now)
    gates = _open_gates(sim.state)
    if gates and (wake is None or sim.choices.pick(3) != 0):  # a person decides
        step_id = gates[sim.choices.pick(len(gates))]
        decision: Event = (
            ApprovalGranted(step_id, "alice", "fine", {"n": 1})
            if sim.choices.pick(2) == 0
            else ApprovalDenied(step_id, "bob", "no")
        )
        sim.append([decision])
        sim.now += timedelta(seconds=1 + sim.choices.pick(5))
        return
    if wake is None:
        raise SimulationStuck(f"nothing running and nothing scheduled: {sim.state}")
    sim.now = max(wake, sim.now + timedelta(milliseconds=1))


def _open_gates(state: RunState) -> list[str]:
    return [
        step_id
        for step_id in state.steps_with_status("waiting")
        if state.step(step_id).wait_reason == "approval" and state.step(step_id).decision is None
    ]


def _outcome(sim: _Simulation, step_id: str) -> list[Event]:
    attempt = sim.state.step(step_id).attempt
    roll = sim.choices.pick(20)
    if roll < 10:
        output = {"step": step_id, "attempt": attempt}
        return [StepCompleted(step_id, attempt, output, _ports(sim, step_id))]
    if roll == 18:
        return _correction(sim) or [StepCompleted(step_id, attempt, None)]
    if roll == 19:
        return [RunCancelled(actor="alice", reason="changed my mind")]
    error_class, retry_after = {
        10: ("transient", None),
        11: ("transient", None),
        12: ("transient", None),
        13: ("rate_limited", 30.0),
        14: ("permanent", None),
        15: ("worker_lost", None),
        16: ("worker_lost", None),
        17: ("invalid_output", None),
    }[roll]
    return [StepFailed(step_id, attempt, error_class, f"{error_class} failure", retry_after)]


def _ports(sim: _Simulation, step_id: str) -> tuple[str, ...] | None:
    step_def = sim.definition.steps[step_id]
    if step_def.kind != "branch":
        return None
    ports = tuple(step_def.config["ports"])
    options: list[tuple[str, ...] | None] = [None, (), ports, *[(port,) for port in ports]]
    return options[sim.choices.pick(len(options))]


def _correction(sim: _Simulation) -> list[Event]:
    completed = sim.state.steps_with_status("completed")
    if not completed:
        return []
    step_id = completed[sim.choices.pick(len(completed))]
    seq = max(r.seq for r in sim.log if getattr(r.event, "step_id", None) == step_id)
    return [OutputCorrected(step_id, {"corrected": True}, seq, "alice", "wrong summary")]


@st.composite
def simulated_runs(draw: st.DrawFn, max_steps: int = 8) -> tuple[dict[str, Any], list[Recorded]]:
    """A random workflow (JSON) and the log of one random execution of it."""
    data = draw(workflows(max_steps=max_steps))
    choices = draw(st.lists(st.integers(0, 2**16), max_size=200))
    return data, simulate(Definition.from_json(data), choices)
