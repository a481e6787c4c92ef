"""Structured logs: every line emitted during a step names its run, step and attempt."""

import json
import logging

from tests.support.live import run_status, wait_for
from tests.support.workflows import chain, publish
from vectorbea.logcontext import PlainFormatter, StepContextFilter, step_scope
from vectorbea.runs.commands import start_run


def test_a_line_logged_by_a_tool_in_a_worker_is_json_with_its_step(live, acme):
    live.env["LOG_FORMAT"] = "json"
    live.worker()
    workflow = publish(acme, chain(2, "tool", {"tool": "log_line", "args": {"what": "invoices"}}))

    run = start_run(workflow, {})
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    live.stop_all()

    lines = []
    for path in live.logs.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and "working on invoices" in line:
                lines.append(json.loads(line))
    mine = [line for line in lines if line["run_id"] == str(run.id)]
    assert sorted((line["step_id"], line["attempt"]) for line in mine) == [("s0", 1), ("s1", 1)]
    assert all(line["logger"] == "team.tools" and line["level"] == "INFO" for line in mine)
    assert set(mine[0]) == {"time", "level", "logger", "message", "run_id", "step_id", "attempt"}


def test_lines_outside_a_step_have_empty_step_fields():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    StepContextFilter().filter(record)
    assert (record.run_id, record.step_id, record.attempt) == ("", "", "")
    assert PlainFormatter("%(message)s").format(record) == "hello"

    with step_scope("r-1", "s0", 2):
        StepContextFilter().filter(record)
    assert PlainFormatter("%(message)s").format(record) == "hello [run r-1 step s0 attempt 2]"
