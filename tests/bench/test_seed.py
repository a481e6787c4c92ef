"""bench/seed.py writes a benchmark's runs in bulk; its check against the engine's own
append is what keeps those rows the rows the engine writes."""

import sys
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from tests.bench.test_benchmarks_smoke import ROOT
from tests.support.workflows import publish
from vectorbea.engine import Definition, RunStarted, StepStarted
from vectorbea.eventlog.models import Event, Run, RunSummary
from vectorbea.eventlog.projections import COLUMNS, RunSummaryProjection

sys.path.append(str(ROOT / "bench"))  # last: the benches' modules shadow nothing
import seed
import ui

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(acme) -> list:
    """One run of each kind bench/ui.py seeds, and one whose step is still running."""
    body = ui.definition()
    workflow = publish(acme, body)
    version = workflow.latest_version()
    begin = RunStarted(str(workflow.id), str(version.id), {"customer": "c-1"}, "ada")
    logs = [events for _, events in ui.templates().values()]
    logs.append([*ui.ok("s0"), StepStarted("s1", 1)])
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    return [
        seed.SeedRun(
            uuid4(),
            acme.id,
            workflow.id,
            version.id,
            None,
            Definition.from_json(body),
            seed.run_log(start, [begin, *events], 2),
        )
        for events in logs
    ]


def test_the_seed_writes_what_the_engine_appends_and_leaves_nothing(runs):
    seed.check_against_append(runs)

    assert not Run.objects.exists()
    assert not Event.objects.exists()


def test_a_seed_whose_summary_differs_from_the_engines_is_refused(runs, monkeypatch):
    class Stale(RunSummaryProjection):
        """A summary writer from before the run list searched runs' input."""

        @staticmethod
        def values(*args, **kwargs):
            values = RunSummaryProjection.values(*args, **kwargs)
            values[COLUMNS.index("search_text")] = ""
            return values

    monkeypatch.setattr(seed, "RunSummaryProjection", Stale)

    with pytest.raises(seed.SeedDiffers, match="eventlog_runsummary"):
        seed.check_against_append(runs)
    assert not RunSummary.objects.exists()


def test_bulk_written_runs_are_read_back_as_the_engine_reads_them(runs):
    from vectorbea.eventlog import store

    seed.write_runs(runs)

    for run in runs:
        loaded = store.load(run.id)
        assert loaded.state.last_seq == len(run.log)
        assert [r.event for r in store.read_events(run.id)] == [r.event for r in run.log]
