"""Python tools the tests' worker processes load (VECTORBEA_TOOL_MODULES=tests.support.tools).

`record` writes a row per phase of each attempt into test_side_effect, so tests can tell
exactly which attempts of which steps ran, and how far."""

import os
import time

from django.db import connection

from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps.tools import tool

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS test_side_effect (
    id bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    step_id text NOT NULL,
    attempt int NOT NULL,
    phase text NOT NULL,
    idempotency_key text NOT NULL,
    pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def _note(ctx, phase: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_side_effect (run_id, step_id, attempt, phase, idempotency_key, pid) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [ctx.run_id, ctx.step_id, ctx.attempt, phase, ctx.idempotency_key, os.getpid()],
        )


@tool("record")
def record(args, ctx):
    """Record the start of the attempt, work for args.sleep seconds, record the end."""
    _note(ctx, "start")
    time.sleep(float(args.get("sleep", 0)))
    _note(ctx, "end")
    return {"step": ctx.step_id, "attempt": ctx.attempt}


@tool("fail_until")
def fail_until(args, ctx):
    """Fail with args.error_class until attempt args.attempt, then succeed."""
    _note(ctx, "start")
    if ctx.attempt < int(args["attempt"]):
        raise StepError(ErrorClass(args.get("error_class", "transient")), "scripted failure")
    return {"attempt": ctx.attempt}


@tool("echo_outputs")
def echo_outputs(args, ctx):
    """Return what this step can see: the run input and earlier steps' outputs."""
    return {"input": dict(ctx.run_input), "outputs": dict(ctx.outputs)}


@tool("echo_args")
def echo_args(args, ctx):
    """Return the (rendered) args this step was given, after recording that it ran."""
    _note(ctx, "start")
    return {"args": dict(args)}


@tool("big_output")
def big_output(args, ctx):
    """Return args.megabytes MB of text (default 10)."""
    _note(ctx, "start")
    return {"text": "x" * int(float(args.get("megabytes", 10)) * 1_000_000)}


@tool("deep_output")
def deep_output(args, ctx):
    """Return JSON nested args.depth levels deep (default 10,000)."""
    _note(ctx, "start")
    value: dict = {}
    for _ in range(int(args.get("depth", 10_000))):
        value = {"d": value}
    return value


@tool("with_usage")
def with_usage(args, ctx):
    """Succeed or fail (args.fail) reporting what the attempt consumed, as an LLM step does."""
    from vectorbea.steps.registry import StepResult

    usage = {"model": "fake-1", "input_tokens": 12, "output_tokens": 3, "cost_usd": 0.0004}
    _note(ctx, "start")
    if args.get("fail"):
        error_class = ErrorClass(args.get("error_class", "permanent"))
        raise StepError(error_class, "scripted failure after a paid call", usage=usage)
    return StepResult({"ok": True}, usage=usage)


@tool("lookup_region")
def lookup_region(args, ctx):
    """Fail permanently unless args.region is one the tool knows ("eu" or "us"), as a
    step with a wrong setting does; a person fixes the setting and retries."""
    _note(ctx, "start")
    region = args.get("region")
    if region not in ("eu", "us"):
        raise StepError(ErrorClass.PERMANENT, f"Unknown region {region!r}: use 'eu' or 'us'")
    return {"region": region, "customers": 3}


@tool("kill_worker")
def kill_worker(args, ctx):
    """SIGKILL the worker process running this step, every time (a step that crashes its
    worker: a segfaulting library, the OOM killer)."""
    import signal

    _note(ctx, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@tool("slow_first_attempt")
def slow_first_attempt(args, ctx):
    """Attempt 1 works for args.seconds, stopping early (as a well-behaved tool does) when
    its attempt is cancelled; later attempts finish at once."""
    _note(ctx, "start")
    if ctx.attempt == 1:
        deadline = time.monotonic() + float(args.get("seconds", 30))
        while time.monotonic() < deadline:
            if ctx.is_cancelled:
                raise StepError(ErrorClass.CANCELLED, "stopped: the attempt was cancelled")
            time.sleep(0.05)
    _note(ctx, "end")
    return {"attempt": ctx.attempt}


@tool("log_line")
def log_line(args, ctx):
    """Write one log line from inside the step (as a team's own tool would)."""
    import logging

    logging.getLogger("team.tools").info("working on %s", args.get("what", "it"))
    return {"logged": True}


# Tools for agent steps: each records one row per call (phase "tool:<name>", with the
# call's own idempotency key), so tests can count every side effect.


@tool("lookup_order", description="Find an order by its number.")
def lookup_order(args, ctx, *, order_id: int, sleep: float = 0):
    time.sleep(float(sleep))
    _note(ctx, "tool:lookup_order")
    return {"order_id": order_id, "total": 40, "status": "delivered"}


@tool(
    "refund",
    description="Refund part of an order.",
    schema={
        "type": "object",
        "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"],
        "additionalProperties": False,
    },
)
def refund(args, ctx):
    time.sleep(float(args.get("sleep", 0)))
    _note(ctx, f"tool:refund:{args['amount']}")
    return {"refunded": args["amount"]}


@tool("notify", description="Tell the customer something.")
def notify(args, ctx, *, text: str):
    _note(ctx, "tool:notify")
    return "sent"


@tool("explode", description="A tool that always fails.")
def explode(args, ctx):
    _note(ctx, "tool:explode")
    raise RuntimeError("the warehouse API is down")


@tool("ship", description="Ship a replacement for an order (once per call).")
def ship(args, ctx, *, order_id: int, sleep: float = 0):
    """Each run of the call is noted as "exec:ship"; its effect ("tool:ship") happens once
    per idempotency key, as an API that honours Idempotency-Key does it."""
    _note(ctx, "exec:ship")
    time.sleep(float(sleep))
    key = ctx.idempotency_key
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_side_effect (run_id, step_id, attempt, phase, idempotency_key, pid) "
            "SELECT %s, %s, %s, 'tool:ship', %s, %s WHERE NOT EXISTS (SELECT 1 FROM "
            "test_side_effect WHERE idempotency_key = %s AND phase = 'tool:ship')",
            [ctx.run_id, ctx.step_id, ctx.attempt, key, os.getpid(), key],
        )
    return {"shipped": order_id}
