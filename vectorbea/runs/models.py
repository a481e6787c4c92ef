"""The runs app's read model: which run re-runs which (a projection of RunStarted)."""

from django.db import models

from vectorbea.eventlog.models import Run


class Rerun(models.Model):
    """A run started as a re-run of another (RunStarted.rerun_of): what lets a run's page
    list its re-runs without reading other runs' logs. Only RerunProjection writes it."""

    run = models.OneToOneField(
        Run, primary_key=True, on_delete=models.DO_NOTHING, related_name="rerun"
    )
    # No constraint: the origin is a run of the same workspace, which the command checked.
    origin = models.ForeignKey(
        Run, on_delete=models.DO_NOTHING, related_name="reruns", db_constraint=False
    )

    def __str__(self) -> str:
        return f"{self.run_id} re-runs {self.origin_id}"
