from django.db import migrations

# The guard of a run's first append (runs.commands.start_run). VOLATILE, so the query after
# the lock reads with a snapshot taken after the lock was granted: the kill switch marks a
# workspace stopped under the workspace row's update lock, so a start either holds its
# share lock first (and its run is among those the switch stops) or reads the switch
# thrown. Also true only while the caller's remembered head still holds: the same runaway
# guards, and no version of the workflow newer than the one it starts.
MAY_START = """
CREATE OR REPLACE FUNCTION vectorbea_may_start(
    ws uuid, max_steps integer, max_attempts integer, wf uuid, version_number integer
) RETURNS boolean VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts_workspace WHERE id = ws FOR SHARE;
    RETURN EXISTS (
        SELECT 1 FROM accounts_workspace w
        LEFT JOIN budgets_workspacelimits l ON l.workspace_id = w.id
        WHERE w.id = ws AND l.stopped_at IS NULL
          AND l.max_steps_per_run IS NOT DISTINCT FROM max_steps
          AND l.max_attempts_per_step IS NOT DISTINCT FROM max_attempts
          AND NOT EXISTS (SELECT 1 FROM workflows_workflowversion v
                          WHERE v.workflow_id = wf AND v.number > version_number)
    );
END;
$$;
"""

DROP = "DROP FUNCTION IF EXISTS vectorbea_may_start(uuid, integer, integer, uuid, integer);"


class Migration(migrations.Migration):
    dependencies = [
        ("eventlog", "0005_steplease_resends"),
        ("accounts", "0001_initial"),
        ("budgets", "0001_initial"),
        ("workflows", "0003_draft_revision"),
    ]

    operations = [migrations.RunSQL(MAY_START, DROP)]
