"""The run list: cost, current step and searchable input on the summary; keyset indexes."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("eventlog", "0002_append_only"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="runsummary",
            name="eventlog_ru_workspa_4ccc97_idx",
        ),
        migrations.RemoveIndex(
            model_name="runsummary",
            name="eventlog_ru_workspa_ca1a2b_idx",
        ),
        migrations.AddField(
            model_name="runsummary",
            name="cost_usd",
            field=models.DecimalField(decimal_places=6, default=0, max_digits=14),
        ),
        migrations.AddField(
            model_name="runsummary",
            name="current_label",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AddField(
            model_name="runsummary",
            name="search_text",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddIndex(
            model_name="runsummary",
            index=models.Index(
                fields=["workspace", "-updated_at", "-run"], name="summary_ws_updated"
            ),
        ),
        migrations.AddIndex(
            model_name="runsummary",
            index=models.Index(
                fields=["workspace", "status", "-updated_at", "-run"], name="summary_ws_status"
            ),
        ),
        migrations.AddIndex(
            model_name="runsummary",
            index=models.Index(
                fields=["workspace", "-started_at", "-run"], name="summary_ws_started"
            ),
        ),
        migrations.AddIndex(
            model_name="runsummary",
            index=models.Index(
                fields=["workspace", "workflow", "-updated_at", "-run"], name="summary_ws_workflow"
            ),
        ),
        # Free-text search on the input: LIKE '%term%' on lower-cased text, by trigrams.
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "CREATE INDEX summary_search ON eventlog_runsummary "
            "USING gin (search_text gin_trgm_ops)",
            reverse_sql="DROP INDEX summary_search",
        ),
    ]
