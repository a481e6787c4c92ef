from django.db import migrations

# The kill switch's rule, defined once, as a view: a workspace is stopped while its limits
# row has a stop time. A view is expanded into each query that reads it, so the appends'
# check costs one index probe (a SQL function holding a sub-select is called, not
# inlined, at every step). vectorbea_workspace_running reads it after taking a share lock
# on the workspace row (see migration 0010).
RULE = """
CREATE OR REPLACE VIEW vectorbea_stopped_workspaces AS
    SELECT workspace_id, stopped_by, stop_reason FROM budgets_workspacelimits
    WHERE stopped_at IS NOT NULL;

CREATE OR REPLACE FUNCTION vectorbea_workspace_running(ws uuid) RETURNS boolean
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts_workspace WHERE id = ws FOR SHARE;
    RETURN NOT EXISTS (SELECT 1 FROM vectorbea_stopped_workspaces WHERE workspace_id = ws);
END;
$$;

DROP FUNCTION IF EXISTS vectorbea_workspace_stopped(uuid);
"""

REVERSE = """
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

DROP VIEW IF EXISTS vectorbea_stopped_workspaces;
"""


class Migration(migrations.Migration):
    dependencies = [("eventlog", "0010_kill_switch_rule")]

    operations = [migrations.RunSQL(RULE, REVERSE)]
