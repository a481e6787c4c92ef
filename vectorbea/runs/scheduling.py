"""Ringing the doorbell: Dramatiq messages that wake a run or hand a step to a worker.

Always after commit (a worker must find the rows it is told about), and never trusted:
if a message is lost, the scheduler finds the due run or the unclaimed lease in Postgres
and rings again.

The one deliberate back-edge from vectorbea to workers: actors are imported in the
functions, at call time.

A send that fails (Redis down) is logged and dropped, never raised into the transaction's
caller: the scheduler rings again once Redis is back.
"""

from uuid import UUID

from django.db import transaction


def kick(run_id: UUID) -> None:
    def send() -> None:
        from workers.actors import advance_run

        advance_run.send(str(run_id))

    transaction.on_commit(send, robust=True)


def dispatch(run_id: UUID, step_id: str, attempt: int) -> None:
    def send() -> None:
        from workers.actors import execute_step

        execute_step.send(str(run_id), step_id, attempt)

    transaction.on_commit(send, robust=True)
