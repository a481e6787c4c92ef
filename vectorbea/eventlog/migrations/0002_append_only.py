from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION vectorbea_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (append a correcting event instead)',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER event_append_only
    BEFORE UPDATE OR DELETE ON eventlog_event
    FOR EACH ROW EXECUTE FUNCTION vectorbea_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS event_append_only ON eventlog_event;
"""


class Migration(migrations.Migration):
    dependencies = [("eventlog", "0001_initial")]

    operations = [migrations.RunSQL(APPEND_ONLY, DROP)]
