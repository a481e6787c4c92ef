from django.db import migrations

# The kill switch's rule, defined once: a workspace is stopped while its limits row has a
# stop time. Every append that starts work reads it (store.append); a person's action, and
# a run's start, read it through vectorbea_workspace_running, which first takes a share
# lock on the workspace row: the switch is thrown under that row's update lock, so such a
# reader either commits before the switch (and its run is among those the switch then
# stops) or waits and reads the switch thrown. VOLATILE plpgsql, so the read after the
# lock takes a snapshot of its own, after the lock was granted.
RULE = """
CREATE OR REPLACE FUNCTION vectorbea_workspace_stopped(ws uuid) RETURNS boolean
STABLE LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM budgets_workspacelimits
                   WHERE workspace_id = ws AND stopped_at IS NOT NULL)
$$;

CREATE OR REPLACE FUNCTION vectorbea_workspace_running(ws uuid) RETURNS boolean
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts_workspace WHERE id = ws FOR SHARE;
    RETURN NOT vectorbea_workspace_stopped(ws);
END;
$$;

CREATE OR REPLACE FUNCTION vectorbea_may_start(
    ws uuid, max_steps integer, max_attempts integer, wf uuid, version_number integer
) RETURNS boolean VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    IF NOT vectorbea_workspace_running(ws) THEN
        RETURN false;
    END IF;
    RETURN EXISTS (
        SELECT 1 FROM accounts_workspace w
        LEFT JOIN budgets_workspacelimits l ON l.workspace_id = w.id
        WHERE w.id = ws
          AND l.max_steps_per_run IS NOT DISTINCT FROM max_steps
          AND l.max_attempts_per_step IS NOT DISTINCT FROM max_attempts
          AND NOT EXISTS (SELECT 1 FROM workflows_workflowversion v
                          WHERE v.workflow_id = wf AND v.number > version_number)
    );
END;
$$;
"""

# Back to migration 0006's vectorbea_may_start, which read the switch itself.
REVERSE = """
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
DROP FUNCTION IF EXISTS vectorbea_workspace_running(uuid);
DROP FUNCTION IF EXISTS vectorbea_workspace_stopped(uuid);
"""


class Migration(migrations.Migration):
    dependencies = [("eventlog", "0009_summary_copies_without_constraints")]

    operations = [migrations.RunSQL(RULE, REVERSE)]
