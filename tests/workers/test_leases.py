"""Leases: heartbeats keep a long attempt alive; several schedulers share the sweeping."""

from tests.support.live import event_rows, event_types, run_status, side_effects, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run


def test_heartbeats_keep_a_step_longer_than_its_lease_alive(live, acme, settings):
    sleep = settings.VECTORBEA_LEASE_SECONDS * 2.5
    workflow = publish(acme, chain(1, "tool", {"tool": "record", "args": {"sleep": sleep}}))
    live.scheduler()
    live.worker()
    run = start_run(workflow, {})
    wait_for(lambda: run_status(run.id) == "completed", timeout=sleep + 20)
    assert event_types(run.id) == ["RunStarted", "StepStarted", "StepCompleted", "RunCompleted"]
    assert [e[1] for e in side_effects(run.id)] == [1, 1]


def test_later_steps_see_the_run_input_and_earlier_outputs(live, acme):
    definition = chain(3, "noop", {"output": {"n": 1}})
    definition["steps"][2] = {"id": "s2", "kind": "tool", "config": {"tool": "echo_outputs"}}
    workflow = publish(acme, definition)
    live.worker()
    run = start_run(workflow, {"ticket": 7})
    wait_for(lambda: run_status(run.id) == "completed", timeout=20)
    output = next(p["output"] for _, t, p in event_rows(run.id) if t == "RunCompleted")
    assert output == {"s2": {"input": {"ticket": 7}, "outputs": {"s0": {"n": 1}, "s1": {"n": 1}}}}


def test_two_schedulers_recover_each_lost_attempt_once(live, acme):
    workflow = publish(
        acme, chain(3, "tool", {"tool": "record", "args": {"sleep": 0.5}}, retry=FAST_RETRY)
    )
    live.scheduler()
    live.scheduler()
    worker = live.worker()
    runs = [start_run(workflow, {"n": n}) for n in range(4)]
    wait_for(lambda: all(side_effects(r.id) for r in runs), timeout=20)
    live.kill(worker)
    live.worker()
    wait_for(lambda: all(run_status(r.id) == "completed" for r in runs), timeout=60)
    for run in runs:
        rows = event_rows(run.id)
        lost = [(p["step_id"], p["attempt"]) for _, t, p in rows if t == "StepFailed"]
        assert len(lost) == len(set(lost)) == 1  # each lost attempt recorded once
        retries = [p["step_id"] for _, t, p in rows if t == "RetryScheduled"]
        assert retries == [lost[0][0]]
