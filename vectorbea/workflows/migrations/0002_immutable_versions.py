from django.db import migrations

IMMUTABLE = """
CREATE OR REPLACE FUNCTION vectorbea_refuse_version_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'workflow versions are immutable: publish a new version instead'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER workflow_version_immutable
    BEFORE UPDATE ON workflows_workflowversion
    FOR EACH ROW EXECUTE FUNCTION vectorbea_refuse_version_change();
"""


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial")]

    operations = [
        migrations.RunSQL(
            IMMUTABLE, "DROP TRIGGER IF EXISTS workflow_version_immutable ON workflows_workflowversion;"
        )
    ]
