"""record(): the one way anything is written to a run's history.

A writer says what happened (the facts: a step completed, a person approved, a worker was
lost); record() appends those facts together with what decide() says follows from them, in
ONE append, and on a conflict (another writer appended first) reads the run again and
asks for the facts again. Start, worker outcomes, operator actions, gate decisions, the
sweeper and the kill switch all come through here, so a retry after a failure, a resume
after a crash and a person's "retry" take the same road.

The kill switch: an append that would start work in a stopped workspace writes nothing
(store.KillSwitchOn). A person asking for it is refused (the caller says so in words);
the engine's own writers (a worker's outcome, a wake-up, a lost worker) record the facts
with the run paused by the switch instead, so nothing starts and nothing is lost.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from vectorbea.engine import (
    AttentionResolved,
    ConcurrencyConflict,
    Definition,
    Event,
    Recorded,
    RunPaused,
    RunState,
    decide,
    fold,
)
from vectorbea.eventlog import hooks, store

MAX_CONFLICT_RETRIES = 50

Facts = Callable[[store.Loaded], Sequence[Event]]


def then_decide(definition: Definition, facts: Sequence[Event]) -> store.Build:
    """A build callback for store.append: the facts, then decide()'s consequences."""
    render = hooks.renderer()

    def build(state: RunState, now: datetime) -> list[Event]:
        tentative = fold(
            [Recorded(state.last_seq + i, now, e) for i, e in enumerate(facts, 1)], state
        )
        return [*facts, *decide(tentative, definition, now, render=render)]

    return build


def record(
    run_id: UUID,
    facts: Facts,
    *,
    loaded: store.Loaded | None = None,
    claim: str = "",
    by_person: bool = False,
    new_run: store.NewRun | None = None,
) -> store.Appended:
    """Append `facts(loaded)` and their consequences to the run, as one append.

    `loaded`: the run as the caller knows it (read afresh when None, and after every
    conflict); `facts` is asked again on each read, and may refuse by raising (nothing
    is written then). `claim`: a worker id that claims the first step this append starts.
    `by_person`: a person's action; in a stopped workspace it raises store.KillSwitchOn
    instead of pausing the run. `new_run`: the run's first append (`loaded` holds its
    initial state); it writes the run's row too, and raises StartRefused when its guard
    refuses it.
    Raises ConcurrencyConflict after MAX_CONFLICT_RETRIES lost races, and what the store
    raises (LeaseLost, LookupError)."""
    stopped: list[Event] = []
    for _ in range(MAX_CONFLICT_RETRIES):
        if loaded is None:
            loaded = store.load(run_id)
        asked = [*facts(loaded), *stopped]
        now = loaded.clock.now()
        definition = _definition_after(loaded, asked, now)
        try:
            return store.append(
                run_id,
                loaded.state,
                then_decide(definition, asked),
                definition,
                now=now,
                claim_first_started=claim,
                workspace_id=loaded.workspace_id,
                by_person=by_person,
                new_run=new_run,
                decided=True,
            )
        except ConcurrencyConflict:
            loaded = None
        except store.KillSwitchOn as refused:
            if by_person:
                raise
            stopped = [RunPaused(refused.stop.actor, refused.stop.reason, stopped=True)]
    raise ConcurrencyConflict(run_id, loaded.state.last_seq if loaded else 0)


def _definition_after(loaded: store.Loaded, facts: Sequence[Event], now: datetime) -> Definition:
    """The definition the run is on once `facts` are recorded: what decides their
    consequences and what the projections describe (a person's retry may move the run to
    another version of its workflow)."""
    if not any(isinstance(fact, AttentionResolved) and fact.version_id for fact in facts):
        return loaded.definition
    recorded = [Recorded(loaded.state.last_seq + i, now, e) for i, e in enumerate(facts, 1)]
    version_id = store.current_version(fold(recorded, loaded.state), loaded.version_id)
    if version_id == loaded.version_id:
        return loaded.definition
    return store.definition_for(version_id)


def advanced(loaded: store.Loaded, appended: store.Appended) -> store.Loaded:
    """The run as `loaded` after `appended`: its state and a fresh reading of the clock."""
    return replace(loaded, state=appended.state, clock=appended.clock)
