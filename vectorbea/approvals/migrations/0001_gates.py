"""The inbox's Gate projection (one row per opening of an approval step)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("accounts", "0001_initial"),
        ("eventlog", "0001_initial"),
        ("workflows", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Gate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("step_id", models.CharField(max_length=64)),
                ("attempt", models.PositiveIntegerField()),
                ("key", models.CharField(max_length=80)),
                ("step_name", models.CharField(blank=True, default="", max_length=200)),
                ("title", models.CharField(blank=True, default="", max_length=300)),
                ("instructions", models.TextField(blank=True, default="")),
                ("payload", models.JSONField(null=True)),
                ("form", models.JSONField(default=list)),
                ("run_input", models.JSONField(null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("waiting", "Waiting"),
                            ("approved", "Approved"),
                            ("denied", "Denied"),
                            ("timed_out", "Timed out"),
                            ("closed", "Closed"),
                        ],
                        max_length=16,
                    ),
                ),
                ("approved", models.BooleanField(null=True)),
                ("approver_roles", models.JSONField(default=list)),
                ("approver_users", models.JSONField(default=list)),
                ("required", models.PositiveSmallIntegerField(default=1)),
                ("granted_by", models.JSONField(default=list)),
                ("allow_self_approval", models.BooleanField(default=False)),
                ("initiator", models.CharField(blank=True, default="", max_length=150)),
                ("level", models.PositiveSmallIntegerField(default=0)),
                ("requested_at", models.DateTimeField()),
                ("timeout_at", models.DateTimeField(null=True)),
                ("decided_at", models.DateTimeField(null=True)),
                ("decided_by", models.CharField(blank=True, default="", max_length=150)),
                ("reason", models.TextField(blank=True, default="")),
                ("updated_seq", models.PositiveIntegerField()),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="gates",
                        to="eventlog.run",
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="workflows.workflow",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="accounts.workspace",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["workspace", "status", "-requested_at"], name="gate_ws_status"
                    ),
                    models.Index(fields=["workspace", "-requested_at"], name="gate_ws_requested"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "step_id", "attempt"), name="one_row_per_gate"
                    )
                ],
            },
        ),
    ]
