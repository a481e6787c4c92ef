"""SIGTERM (a deploy): a worker hands back what it cannot finish in time, and exits."""

import signal
import time

from tests.support.live import event_rows, run_status, side_effects, wait_for
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run


def test_sigterm_during_a_long_step_hands_it_to_another_worker(live, acme):
    definition = chain(3, "tool", {"tool": "record"})
    definition["steps"][1]["config"] = {"tool": "slow_first_attempt", "args": {"seconds": 60}}
    workflow = publish(acme, definition)
    live.env["VECTORBEA_SHUTDOWN_GRACE_SECONDS"] = "1"
    live.scheduler()
    stopping = live.worker()
    run = start_run(workflow, {})
    wait_for(lambda: any(e[0] == "s1" for e in side_effects(run.id)), timeout=30)

    # As systemd's KillMode=mixed or a container runtime does: the main process only, which
    # passes it on to its worker processes once (a second SIGTERM would kill them hard).
    stopping.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    live.worker()  # the new version of the deploy
    stopping.wait(timeout=30)
    exited_after = time.monotonic() - sent
    wait_for(lambda: run_status(run.id) == "completed", timeout=60)

    assert exited_after < 20  # bounded: it did not wait out the 60 s step
    rows = event_rows(run.id)
    assert not [p for _, t, p in rows if t == "StepFailed"]  # a hand-back is not a failure
    (interrupted,) = [p for _, t, p in rows if t == "StepInterrupted"]
    assert (interrupted["step_id"], interrupted["attempt"]) == ("s1", 1)
    assert interrupted["actor"] == "worker shutdown"
    completed = {p["step_id"]: p["attempt"] for _, t, p in rows if t == "StepCompleted"}
    assert completed == {"s0": 1, "s1": 2, "s2": 1}
    starts = [(e[0], e[1]) for e in side_effects(run.id) if e[2] == "start"]
    assert starts == [("s0", 1), ("s1", 1), ("s1", 2), ("s2", 1)]  # nothing ran twice
