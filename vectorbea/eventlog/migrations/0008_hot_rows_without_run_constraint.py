"""Events, leases and checkpoints name their run without a foreign-key constraint.

Every step inserts two events and a lease: checking their constraint locks the run's row
(FOR KEY SHARE: a heap write and a WAL record in every step's transaction). The append is
the only writer of these rows and checks the run exists itself; runs are never deleted.
Django leaves the constraint of a field in a composite primary key in place when
db_constraint changes, so the database side is written out here.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLES = ("eventlog_event", "eventlog_steplease", "eventlog_checkpoint")

DROP = """
DO $$
DECLARE fk record;
BEGIN
  FOR fk IN
    SELECT c.conrelid::regclass AS tab, c.conname FROM pg_constraint c
    WHERE c.contype = 'f' AND c.confrelid = 'eventlog_run'::regclass
      AND c.conrelid::regclass::text IN ('eventlog_event', 'eventlog_steplease',
                                         'eventlog_checkpoint')
  LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tab, fk.conname);
  END LOOP;
END $$;
"""

RESTORE = "\n".join(
    f"ALTER TABLE {table} ADD CONSTRAINT {table}_run_id_fk FOREIGN KEY (run_id) "
    "REFERENCES eventlog_run (id) DEFERRABLE INITIALLY DEFERRED;"
    for table in TABLES
)


def run_field(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        db_constraint=False,
        db_index=False,
        on_delete=django.db.models.deletion.DO_NOTHING,
        related_name=related_name,
        to="eventlog.run",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("eventlog", "0007_summary_fewer_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(DROP, RESTORE)],
            state_operations=[
                migrations.AlterField("checkpoint", "run", run_field("checkpoints")),
                migrations.AlterField("event", "run", run_field("events")),
                migrations.AlterField("steplease", "run", run_field("leases")),
            ],
        ),
    ]
