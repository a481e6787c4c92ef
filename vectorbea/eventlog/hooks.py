"""What other apps attach to the one append: registered in their AppConfig.ready(), so the
event store imports none of them.

- event filters: rewrite events before they are recorded (the keys app redacts known
  secrets: they never reach the log);
- projections: read models written inside the append's transaction (the approvals app's
  gate rows), so they commit with the events that justify them, or not at all;
- after-commit hooks: what happens once the events are committed (the live push, emails,
  metrics, dispatching the steps the append started). A hook must be quick or hand its
  work off, and must not raise; one that does is logged and the others still run;
- the config renderer decide() uses for the steps the engine moves itself (delays and
  approvals, whose settings may be templates).

The run summary is not here: it is the store's own, written by the append statement itself.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from vectorbea.engine import ConfigRenderer, Definition, Event, Recorded, RunState


@dataclass(frozen=True)
class Change:
    """One append, as projections and after-commit hooks see it."""

    run_id: UUID
    workspace_id: UUID
    definition: Definition
    before: RunState
    state: RunState
    events: tuple[Recorded, ...]
    # The attempts this append started, as (step_id, attempt); the first one is claimed by
    # `claimed_by` when that is not empty (a worker that runs it inline).
    started: tuple[tuple[str, int], ...]
    claimed_by: str

    @property
    def unclaimed(self) -> tuple[tuple[str, int], ...]:
        """The started attempts nobody has claimed: for the broker to hand out."""
        return self.started[1:] if self.claimed_by else self.started


class Projection(Protocol):
    name: str

    def touches(self, change: Change) -> bool:
        """Whether the change alters this projection's rows (pure and cheap: decided before
        the append, to wrap it in a transaction only when needed)."""

    def write(self, change: Change) -> None:
        """Bring the rows up to date, inside the append's transaction."""

    def rebuild(self, run_id: UUID, events: Sequence[Recorded], definition: Definition) -> int:
        """Recompute the run's rows from its whole log; returns how many rows it wrote."""


EventFilter = Callable[[Sequence[Event]], Sequence[Event]]
AfterCommit = Callable[[Change], None]

EVENT_FILTERS: list[EventFilter] = []
PROJECTIONS: list[Projection] = []
AFTER_COMMIT: list[AfterCommit] = []
RENDERERS: list[ConfigRenderer] = []


def _register[T](registry: list[T], item: T) -> None:
    if item not in registry:  # ready() may run more than once (tests, reloads)
        registry.append(item)


def register_event_filter(event_filter: EventFilter) -> None:
    _register(EVENT_FILTERS, event_filter)


def register_projection(projection: Projection) -> None:
    _register(PROJECTIONS, projection)


def register_after_commit(hook: AfterCommit) -> None:
    _register(AFTER_COMMIT, hook)


def register_config_renderer(renderer: ConfigRenderer) -> None:
    RENDERERS[:] = [renderer]


def renderer() -> ConfigRenderer | None:
    return RENDERERS[0] if RENDERERS else None
