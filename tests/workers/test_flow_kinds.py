"""Flow kinds on real worker processes: templated inputs, branches, delays, approval gates,
refused templates and oversized outputs."""

import time
from datetime import datetime

import pytest

from tests.support.live import event_rows, event_types, run_status, side_effects, wait_for
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import GateNotWaiting, decide_gate, start_run


def finished(run_id):
    return lambda: (
        run_status(run_id)
        in (
            "completed",
            "failed",
            "denied",
            "cancelled",
            "needs_attention",
        )
    )


def has_event(run_id, type_name):
    return lambda: type_name in event_types(run_id)


def payloads(run_id, type_name):
    return [payload for _, t, payload in event_rows(run_id) if t == type_name]


def steps_run(run_id):
    return [effect[0] for effect in side_effects(run_id)]


def test_a_transform_reads_the_input_and_an_earlier_output(live, acme):
    definition = chain(2, "tool", {"tool": "record"})
    definition["steps"].append(
        {
            "id": "shape",
            "kind": "transform",
            "config": {
                "output": {
                    "who": "{{ steps.s1.output.step }}",
                    "attempt": "{{ steps.s1.output.attempt }}",
                    "title": "Ticket {{ input.ticket }} for {{ input.customer.name }}",
                }
            },
        }
    )
    definition["edges"].append({"source": "s1", "target": "shape", "port": None})
    workflow = publish(acme, definition)
    live.worker()

    run = start_run(workflow, {"ticket": 7, "customer": {"name": "Ada"}})
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    (done,) = payloads(run.id, "RunCompleted")
    assert done["output"] == {"shape": {"who": "s1", "attempt": 1, "title": "Ticket 7 for Ada"}}


def test_a_tool_gets_its_args_rendered(live, acme):
    definition = chain(1, "tool", {"tool": "record"})
    definition["steps"].append(
        {
            "id": "use",
            "kind": "tool",
            "config": {"tool": "echo_args", "args": {"n": "{{ input.n + 1 }}", "s": "{{ input }}"}},
        }
    )
    definition["edges"].append({"source": "s0", "target": "use", "port": None})
    workflow = publish(acme, definition)
    live.worker()

    run = start_run(workflow, {"n": 1})
    wait_for(finished(run.id))

    (done,) = payloads(run.id, "RunCompleted")
    assert done["output"] == {"use": {"args": {"n": 2, "s": {"n": 1}}}}


def branch_workflow():
    record = {"tool": "record"}
    return {
        "input_schema": {"type": "object"},
        "steps": [
            {
                "id": "route",
                "kind": "branch",
                "config": {
                    "conditions": [{"port": "urgent", "when": "{{ input.priority == 'high' }}"}],
                    "default_port": "normal",
                },
            },
            {"id": "page_someone", "kind": "tool", "config": record},
            {"id": "queue_it", "kind": "tool", "config": record},
            {"id": "join", "kind": "tool", "config": record},
        ],
        "edges": [
            {"source": "route", "target": "page_someone", "port": "urgent"},
            {"source": "route", "target": "queue_it", "port": "normal"},
            {"source": "page_someone", "target": "join", "port": None},
            {"source": "queue_it", "target": "join", "port": None},
        ],
    }


@pytest.mark.parametrize(
    ("priority", "taken", "skipped"),
    [("high", "page_someone", "queue_it"), ("low", "queue_it", "page_someone")],
)
def test_a_branch_skips_the_untaken_side_and_the_join_after_it_runs(
    live, acme, priority, taken, skipped
):
    workflow = publish(acme, branch_workflow())
    live.worker()

    run = start_run(workflow, {"priority": priority})
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    assert payloads(run.id, "StepSkipped") == [{"step_id": skipped, "reason": "branch not taken"}]
    route = next(p for p in payloads(run.id, "StepCompleted") if p["step_id"] == "route")
    assert route["ports"] == ["urgent" if priority == "high" else "normal"]
    assert [s for s in steps_run(run.id) if s != "join"] == [taken, taken]  # start, end
    assert "join" in steps_run(run.id)


def test_a_delay_waits_without_a_worker_and_the_run_goes_on_after_it(live, acme):
    definition = chain(2, "tool", {"tool": "record"})
    definition["steps"].insert(1, {"id": "pause", "kind": "delay", "config": {"seconds": 1}})
    definition["edges"] = [
        {"source": "s0", "target": "pause", "port": None},
        {"source": "pause", "target": "s1", "port": None},
    ]
    workflow = publish(acme, definition)
    live.worker()
    live.scheduler()

    run = start_run(workflow, {})
    wait_for(finished(run.id), timeout=30)

    assert run_status(run.id) == "completed"
    rows = event_rows(run.id)
    started = [p["step_id"] for _, t, p in rows if t == "StepStarted"]
    assert started == ["s0", "s1"]  # never given to a worker
    (waiting,) = [p for _, t, p in rows if t == "StepWaiting"]
    assert waiting["step_id"] == "pause" and waiting["reason"] == "delay"
    pause_done = next(p for _, t, p in rows if t == "StepCompleted" and p["step_id"] == "pause")
    assert pause_done["output"] == {"waited_until": waiting["until"]}
    s0_end = next(e for e in _effects_at(run.id) if e[0] == "s0" and e[1] == "end")
    s1_start = next(e for e in _effects_at(run.id) if e[0] == "s1" and e[1] == "start")
    assert (s1_start[2] - s0_end[2]).total_seconds() >= 1.0
    assert s1_start[2] >= datetime.fromisoformat(waiting["until"])


def _effects_at(run_id):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT step_id, phase, at FROM test_side_effect WHERE run_id = %s ORDER BY id",
            [run_id],
        )
        return cursor.fetchall()


def gate_workflow(with_denied_edge=False):
    definition = chain(2, "tool", {"tool": "record"})
    definition["steps"].insert(
        1,
        {
            "id": "gate",
            "kind": "approval",
            "name": "Refund",
            "config": {
                "title": "Refund ticket {{ input.ticket }}?",
                "instructions": "Check the amount",
                "payload": {"amount": "{{ input.amount }}", "by": "{{ steps.s0.output.step }}"},
            },
        },
    )
    definition["edges"] = [
        {"source": "s0", "target": "gate", "port": None},
        {"source": "gate", "target": "s1", "port": None},
    ]
    if with_denied_edge:
        definition["steps"].append({"id": "sorry", "kind": "tool", "config": {"tool": "record"}})
        definition["edges"].append({"source": "gate", "target": "sorry", "port": "denied"})
    return definition


def test_an_approved_gate_lets_the_run_finish(live, acme):
    workflow = publish(acme, gate_workflow())
    live.worker()

    run = start_run(workflow, {"ticket": 12, "amount": 30})
    wait_for(has_event(run.id, "ApprovalRequested"))

    (requested,) = payloads(run.id, "ApprovalRequested")
    assert requested["title"] == "Refund ticket 12?"
    assert requested["payload"] == {"amount": 30, "by": "s0"}
    assert requested["timeout_at"] is None
    time.sleep(0.3)
    assert "s1" not in steps_run(run.id)  # the gate holds the run
    assert run_status(run.id) not in ("completed", "failed", "denied")

    decide_gate(run.id, "gate", approve=True, actor="alice", reason="within policy")
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    (granted,) = payloads(run.id, "ApprovalGranted")
    assert granted == {
        "step_id": "gate",
        "actor": "alice",
        "reason": "within policy",
        "fields": {},
        "gate": "gate:1",
    }
    gate_done = next(p for p in payloads(run.id, "StepCompleted") if p["step_id"] == "gate")
    assert gate_done["output"]["approved"] is True and gate_done["ports"] == ["approved"]
    assert steps_run(run.id) == ["s0", "s0", "s1", "s1"]


def test_a_denied_gate_ends_the_run_denied_with_who_and_why(live, acme):
    workflow = publish(acme, gate_workflow())
    live.worker()

    run = start_run(workflow, {"ticket": 12, "amount": 3000})
    wait_for(has_event(run.id, "ApprovalRequested"))
    decide_gate(run.id, "gate", approve=False, actor="bob", reason="the amount is too high")
    wait_for(finished(run.id))

    assert run_status(run.id) == "denied"
    (failed,) = payloads(run.id, "RunFailed")
    assert failed["reason"] == "Approval 'Refund' was denied by bob: the amount is too high"
    assert "s1" not in steps_run(run.id)


def test_a_denied_gate_with_a_denied_edge_takes_it(live, acme):
    workflow = publish(acme, gate_workflow(with_denied_edge=True))
    live.worker()

    run = start_run(workflow, {"ticket": 1, "amount": 1})
    wait_for(has_event(run.id, "ApprovalRequested"))
    decide_gate(run.id, "gate", approve=False, actor="bob", reason="no")
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    assert payloads(run.id, "StepSkipped") == [{"step_id": "s1", "reason": "branch not taken"}]
    assert "sorry" in steps_run(run.id)


def test_a_gate_decided_twice_says_who_decided_first_and_when(live, acme):
    workflow = publish(acme, gate_workflow())
    live.worker()

    run = start_run(workflow, {"ticket": 1, "amount": 1})
    wait_for(has_event(run.id, "ApprovalRequested"))
    decide_gate(run.id, "gate", approve=True, actor="alice", reason="ok")

    with pytest.raises(GateNotWaiting, match=r"already approved by alice at 20\d\d-"):
        decide_gate(run.id, "gate", approve=False, actor="bob", reason="late")
    wait_for(finished(run.id))
    assert event_types(run.id).count("ApprovalDenied") == 0


def test_a_template_injection_fails_the_step_permanently_and_runs_nothing(live, acme):
    definition = chain(2, "tool", {"tool": "record"})
    definition["steps"][1]["config"] = {
        "tool": "record",
        "args": {"sleep": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
    }
    workflow = publish(acme, definition)
    live.worker()

    run = start_run(workflow, {})
    wait_for(finished(run.id))

    assert run_status(run.id) == "needs_attention"  # a person can fix the template
    (failed,) = payloads(run.id, "StepFailed")
    assert failed["step_id"] == "s1" and failed["error_class"] == "permanent"
    assert "Setting 'args.sleep'" in failed["message"]
    assert "'__class__' is not allowed" in failed["message"]
    assert event_types(run.id).count("StepFailed") == 1  # not retried
    assert "s1" not in steps_run(run.id)  # the tool never ran


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ("big_output", "10,000,012 bytes of JSON; the limit is 1,000,000 bytes"),
        ("deep_output", "nested more than 64 levels deep"),
    ],
)
def test_an_oversized_output_fails_the_step_clearly_and_the_worker_survives(
    live, acme, tool, message
):
    workflow = publish(acme, chain(1, "tool", {"tool": tool}))
    healthy = publish(acme, chain(2, "tool", {"tool": "record"}), name="Healthy")
    worker = live.worker()

    run = start_run(workflow, {})
    wait_for(finished(run.id))

    assert run_status(run.id) == "needs_attention"
    (failed,) = payloads(run.id, "StepFailed")
    assert failed["error_class"] == "permanent"
    assert message in failed["message"]
    (stopped,) = payloads(run.id, "RunNeedsAttention")
    assert message in stopped["summary"]
    assert worker.poll() is None
    after = start_run(healthy, {})
    wait_for(finished(after.id))
    assert run_status(after.id) == "completed"


@pytest.mark.parametrize(("fail", "event"), [(False, "StepCompleted"), (True, "StepFailed")])
def test_what_an_attempt_consumed_is_recorded_with_its_outcome(live, acme, fail, event):
    workflow = publish(acme, chain(1, "tool", {"tool": "with_usage", "args": {"fail": fail}}))
    live.worker()

    run = start_run(workflow, {})
    wait_for(finished(run.id))

    (outcome,) = payloads(run.id, event)
    assert outcome["usage"] == {
        "model": "fake-1",
        "input_tokens": 12,
        "output_tokens": 3,
        "cost_usd": 0.0004,
    }


def test_two_people_deciding_at_once_one_wins_and_the_other_is_told(live, acme):
    import threading

    from django.db import connection

    workflow = publish(acme, gate_workflow())
    live.worker()
    run = start_run(workflow, {"ticket": 1, "amount": 1})
    wait_for(has_event(run.id, "ApprovalRequested"))
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def decide(actor: str, approve: bool) -> None:
        barrier.wait()
        try:
            outcomes[actor] = decide_gate(run.id, "gate", approve=approve, actor=actor, reason="")
        except GateNotWaiting as exc:
            outcomes[actor] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=("alice", True)),
        threading.Thread(target=decide, args=("bob", False)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(finished(run.id))

    winners = [actor for actor, outcome in outcomes.items() if isinstance(outcome, int)]
    (loser,) = [outcome for outcome in outcomes.values() if isinstance(outcome, GateNotWaiting)]
    (winner,) = winners
    assert f"by {winner} at" in str(loser)
    types = event_types(run.id)
    assert types.count("ApprovalGranted") + types.count("ApprovalDenied") == 1
    assert run_status(run.id) == ("completed" if winner == "alice" else "denied")


def test_the_decide_gate_command_approves_and_explains_refusals(live, acme):
    from django.core.management import CommandError, call_command

    workflow = publish(acme, gate_workflow())
    live.worker()
    run = start_run(workflow, {"ticket": 1, "amount": 1})
    wait_for(has_event(run.id, "ApprovalRequested"))

    with pytest.raises(CommandError, match="not an approval step"):
        call_command("decide_gate", str(run.id), "s0", "--approve", "--actor", "alice")
    call_command(
        "decide_gate", str(run.id), "gate", "--approve", "--actor", "alice", "--reason", "ok"
    )
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    with pytest.raises(CommandError, match="already approved by alice"):
        call_command("decide_gate", str(run.id), "gate", "--deny", "--actor", "bob")
