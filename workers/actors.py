"""Dramatiq actors: an id in, one call into vectorbea, nothing else.

max_retries=0: the broker never retries; the engine's RetryPolicy does, from Postgres.
"""

from uuid import UUID

import dramatiq

from vectorbea import queues
from vectorbea.llm.providers import load_sdks
from vectorbea.steps.registry import KINDS, load_kinds
from workers.broker import broker

# Load every step kind (and the tool modules) once, at start, not inside the first step:
# a slow import must never eat into a step's lease.
load_kinds()
load_sdks()  # the LLM providers' SDKs, for the same reason
# Every queue a step kind names (e.g. "llm"): a worker started without --queues takes them
# all; `dramatiq workers.actors --queues llm` runs a pool for one of them.
for _kind in KINDS.values():
    broker.declare_queue(_kind.queue)

SIX_HOURS_MS = 6 * 3600 * 1000


@dramatiq.actor(queue_name=queues.ADVANCE, max_retries=0, time_limit=SIX_HOURS_MS)
def advance_run(run_id: str) -> None:
    from workers import runtime

    runtime.advance(UUID(run_id))


@dramatiq.actor(queue_name=queues.STEPS, max_retries=0, time_limit=SIX_HOURS_MS)
def execute_step(run_id: str, step_id: str, attempt: int) -> None:
    from workers import runtime

    runtime.execute_step(UUID(run_id), step_id, attempt)
