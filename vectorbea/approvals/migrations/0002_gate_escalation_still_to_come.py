"""A gate's escalation still to come, so owners and admins can take it early.

Gates waiting now get theirs from the event that opened them (an ApprovalRequested's
`escalate`, v2 on; v1 gates had none): a gate not escalated yet (level 0) still has it."""

from django.db import migrations, models

BACKFILL = """
UPDATE approvals_gate g
SET escalation = e.payload -> 'escalate'
FROM eventlog_event e
WHERE g.status = 'waiting'
  AND g.level = 0
  AND e.run_id = g.run_id
  AND e.type = 'ApprovalRequested'
  AND e.schema_version >= 2
  AND e.payload ->> 'step_id' = g.step_id
  AND (e.payload ->> 'attempt')::int = g.attempt
  AND jsonb_typeof(e.payload -> 'escalate') = 'object'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_gates"),
    ]

    operations = [
        migrations.AddField(
            model_name="gate",
            name="escalation",
            field=models.JSONField(null=True),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
