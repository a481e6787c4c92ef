"""Step kinds: one registered class per kind, with the config schema that drives both the
server's validation and the builder's config form, and the handler a worker runs.

A handler gets the step's config, its resolved inputs and a StepContext, and returns a
JSON-serialisable output or raises engine.StepError with an error class.
"""

import asyncio
import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from vectorbea import queues
from vectorbea.engine import ErrorClass, KindSpec, StepError
from vectorbea.llm.providers import run_closing


@dataclass
class StepContext:
    run_id: UUID
    workspace_id: UUID
    step_id: str
    attempt: int
    # Stable for the step across attempts and crashes: send it as Idempotency-Key.
    idempotency_key: str
    run_input: Mapping[str, Any]
    outputs: Mapping[str, Any]
    cancelled: threading.Event = field(default_factory=threading.Event)
    workflow_id: str | None = None
    # When the attempt must have ended (time.monotonic()), from the step's timeout: a call
    # still waited on then is abandoned and the attempt fails as transient (retried).
    deadline: float | None = None
    timeout_seconds: float | None = None
    # Set when this attempt is a correction: {"answer", "errors", "problem"} of the last one.
    correction: Mapping[str, Any] | None = None
    # What the attempt wants recorded beside its outcome (budget warnings), as
    # {"scope", "percent", "message"}.
    notices: list[dict[str, Any]] = field(default_factory=list)
    # The step's state as the log has it when this leg of the attempt starts (an agent
    # reads its transcript from it).
    step_state: Any = None
    _on_cancel: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def is_cancelled(self) -> bool:
        """True once this attempt's lease is lost or the run is stopped: abandon the work."""
        return self.cancelled.is_set()

    def cancel(self) -> None:
        """The attempt is over for us: flag it, and stop its call in flight (if any)."""
        self.cancelled.set()
        with _CANCEL_LOCK:
            hooks, self._on_cancel = list(self._on_cancel), []
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the attempt is cancelled (at once, if it already is)."""
        with _CANCEL_LOCK:
            if not self.cancelled.is_set():
                self._on_cancel.append(hook)
                return
        hook()


_CANCEL_LOCK = threading.Lock()


Handler = Callable[[Mapping[str, Any], StepContext], Any]


@dataclass(frozen=True)
class StepKind:
    name: str
    label: str
    config_schema: dict[str, Any]
    handler: Handler
    ports: Callable[[dict[str, Any]], tuple[str, ...]] | None = None
    queue: str = queues.STEPS
    # Render the config's templates ({{ input.x }}, {{ steps.a.output.y }}) before the
    # handler sees it; a kind that evaluates its own templates (branch) opts out.
    render_config: bool = True

    def spec(self) -> KindSpec:
        return KindSpec(name=self.name, config_schema=self.config_schema, ports=self.ports)


KINDS: dict[str, StepKind] = {}


def register(kind: StepKind) -> StepKind:
    if kind.name in KINDS:
        raise ValueError(f"Step kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def kind_specs() -> dict[str, KindSpec]:
    load_kinds()
    return {name: kind.spec() for name, kind in KINDS.items()}


def get_kind(name: str) -> StepKind:
    load_kinds()
    return KINDS[name]


# The modules that register the built-in kinds (each calls register() at import).
BUILTIN_MODULES = (
    "vectorbea.steps.builtin",
    "vectorbea.steps.flow",
    "vectorbea.steps.llm",
    "vectorbea.steps.http",
    "vectorbea.steps.agent",
)
_loading = threading.Lock()
_loaded: list[bool] = []


def load_kinds() -> None:
    """Import the built-in kinds and the tool modules named in VECTORBEA_TOOL_MODULES."""
    from django.conf import settings

    with _loading:
        if _loaded:
            return
        for module in (*BUILTIN_MODULES, *settings.VECTORBEA_TOOL_MODULES):
            importlib.import_module(module)
        _loaded.append(True)


class DeadlinePassed(TimeoutError):
    """The step's timeout passed while its call was in flight (the call was cancelled)."""


def abandoned(ctx: StepContext) -> StepError:
    """The failure of an attempt that stopped waiting for its call because it was
    cancelled (its lease is gone) or its step's timeout passed."""
    if ctx.is_cancelled:
        return StepError(
            ErrorClass.CANCELLED,
            "The call was abandoned: the step was interrupted while it waited for an answer.",
        )
    seconds = ctx.timeout_seconds
    shown = "its limit" if seconds is None else f"{seconds:g} second{'' if seconds == 1 else 's'}"
    return StepError(
        ErrorClass.TRANSIENT,
        f"The step ran longer than its timeout ({shown}) and was abandoned; it is tried again.",
    )


def call_outcome(answered: Any, ctx: StepContext) -> Any:
    """What a PendingCall's call returned; raises what its failure means for the step:
    abandoned (cancelled, or past the step's deadline) as `abandoned(ctx)` says, anything
    else as it was raised."""
    if isinstance(answered, asyncio.CancelledError | DeadlinePassed):
        raise abandoned(ctx)
    if isinstance(answered, BaseException):
        raise answered
    return answered


@dataclass(frozen=True)
class PendingCall:
    """What a handler returns for a step whose slow part waits on the outside world (a
    model, an HTTP API, an async tool): the worker runtime awaits `call()` on its process's
    event loop, holding no worker thread and no database connection meanwhile, then hands
    what it returned (or the exception it raised: CancelledError when the attempt was
    cancelled, TimeoutError at the step's deadline) to `finish`, on a thread with a
    database connection, which returns the step's result or raises StepError."""

    call: Callable[[], Awaitable[Any]]
    finish: Callable[[Any], Any]


def run_now(result: Any, deadline: float | None = None) -> Any:
    """A handler's result, with a PendingCall's call made here and now on an event loop of
    its own (outside a worker: a step tried from the builder, tests). With a `deadline`
    (time.monotonic()), a call still waited on then is cancelled and finished as
    DeadlinePassed, as the worker runtime does at a step's timeout."""
    if not isinstance(result, PendingCall):
        return result

    async def call() -> Any:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return await asyncio.wait_for(result.call(), timeout=left)
        except TimeoutError as exc:
            past = deadline is not None and time.monotonic() >= deadline
            return DeadlinePassed() if past else exc
        except Exception as exc:  # handed to finish, as the worker runtime does
            return exc

    return result.finish(run_closing(call()))


@dataclass(frozen=True)
class Progress:
    """What a handler (or a PendingCall's finish) returns when its attempt has made
    progress to record but is not over: an agent's turn or tool call. The worker records
    `events` (only while the attempt is still the step's running one, as an outcome is)
    and runs the handler again, for the same attempt, with the state they lead to."""

    events: tuple[Any, ...]


@dataclass(frozen=True)
class StepResult:
    """What a branching handler returns: its output and the ports it takes."""

    output: Any
    ports: tuple[str, ...] | None = None
    # What the attempt consumed, e.g. {"model", "input_tokens", "output_tokens",
    # "cost_usd", "cost_estimated"} for an LLM call; recorded in the StepCompleted event.
    usage: dict[str, Any] | None = None
