"""Which run re-runs which: the Rerun projection of RunStarted.rerun_of."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("eventlog", "0011_kill_switch_rule_as_a_view"),
    ]

    operations = [
        migrations.CreateModel(
            name="Rerun",
            fields=[
                (
                    "run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="rerun",
                        serialize=False,
                        to="eventlog.run",
                    ),
                ),
                (
                    "origin",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="reruns",
                        to="eventlog.run",
                    ),
                ),
            ],
        ),
    ]
