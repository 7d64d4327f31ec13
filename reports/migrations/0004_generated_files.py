import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import cims.ids
import reports.models.files


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0003_dashboard_summaries"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="GeneratedFile",
            fields=[
                ("id", models.UUIDField(default=cims.ids.uuid7, editable=False, primary_key=True, serialize=False)),
                ("title", models.CharField(max_length=200, verbose_name="title")),
                ("format", models.CharField(choices=[("xlsx", "Excel"), ("pdf", "PDF"), ("csv", "CSV")], max_length=10, verbose_name="format")),
                ("spec", models.JSONField(verbose_name="specification")),
                ("status", models.CharField(choices=[("queued", "Waiting"), ("running", "Being made"), ("done", "Ready"), ("failed", "Failed")], default="queued", max_length=10, verbose_name="status")),
                ("progress", models.PositiveSmallIntegerField(default=0, verbose_name="progress")),
                ("rows", models.PositiveIntegerField(blank=True, null=True, verbose_name="rows")),
                ("size", models.PositiveBigIntegerField(blank=True, null=True, verbose_name="size")),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("file", models.FileField(blank=True, max_length=255, upload_to=reports.models.files._upload_to, verbose_name="file")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name="created at")),
                ("started_at", models.DateTimeField(blank=True, null=True, verbose_name="started at")),
                ("finished_at", models.DateTimeField(blank=True, null=True, verbose_name="finished at")),
                ("expires_at", models.DateTimeField(blank=True, null=True, verbose_name="expires at")),
                ("owner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="generated_files", to=settings.AUTH_USER_MODEL, verbose_name="owner")),
            ],
            options={
                "verbose_name": "generated file",
                "verbose_name_plural": "generated files",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["owner", "-created_at"], name="reports_genfile_owner_idx"),
                    models.Index(fields=["expires_at"], name="reports_genfile_expires_idx"),
                ],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("progress__lte", 100)), name="reports_genfile_progress_max"),
                ],
            },
        ),
    ]
