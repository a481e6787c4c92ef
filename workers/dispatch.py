"""Ringing the doorbell: Dramatiq messages that wake a run or hand a step to a worker.

Always after commit (a worker must find the rows it is told about), and never trusted:
if a message is lost, the sweeper finds the due run or the unclaimed lease in Postgres
and rings again. The attempts an append starts and nobody claimed are dispatched by
`dispatch_unclaimed`, an after-commit hook of the event log.

A send that fails (Redis down) is logged and dropped, never raised into the transaction's
caller: the sweeper rings again once Redis is back.
"""

from uuid import UUID

from django.db import transaction

from vectorbea import queues
from vectorbea.engine import Definition
from vectorbea.eventlog.hooks import Change


def kick(run_id: UUID) -> None:
    def send() -> None:
        from workers.actors import advance_run

        advance_run.send(str(run_id))

    transaction.on_commit(send, robust=True)


def queue_of(definition: Definition, step_id: str) -> str:
    """The Dramatiq queue a step's attempts go to: its kind's (so operators can size
    pools apart, e.g. slow LLM calls vs quick transforms)."""
    from vectorbea.steps.registry import KINDS, load_kinds

    load_kinds()
    step = definition.steps.get(step_id)
    kind = KINDS.get(step.kind) if step is not None else None
    return kind.queue if kind is not None else queues.STEPS


def dispatch(run_id: UUID, step_id: str, attempt: int, queue: str = queues.STEPS) -> None:
    def send() -> None:
        from workers.actors import execute_step

        message = execute_step.message(str(run_id), step_id, attempt)
        if queue != message.queue_name:
            message = message.copy(queue_name=queue)
        execute_step.broker.enqueue(message)

    transaction.on_commit(send, robust=True)


def dispatch_unclaimed(change: Change) -> None:
    """After an append commits: hand every attempt it started that nobody claimed to a
    worker of the attempt's queue."""
    for step_id, attempt in change.unclaimed:
        dispatch(change.run_id, step_id, attempt, queue_of(change.definition, step_id))
