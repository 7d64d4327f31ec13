import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import cims.ids
import reports.models.delivery


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0005_saved_reports"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=cims.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "formats",
                    models.CharField(
                        choices=[("pdf", "PDF"), ("xlsx", "Excel"), ("both", "PDF and Excel")],
                        default="pdf",
                        max_length=10,
                        verbose_name="formats",
                    ),
                ),
                (
                    "frequency",
                    models.CharField(
                        choices=[("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly")],
                        default="weekly",
                        max_length=10,
                        verbose_name="frequency",
                    ),
                ),
                (
                    "weekday",
                    models.PositiveSmallIntegerField(
                        blank=True,
                        choices=[
                            (0, "Monday"),
                            (1, "Tuesday"),
                            (2, "Wednesday"),
                            (3, "Thursday"),
                            (4, "Friday"),
                            (5, "Saturday"),
                            (6, "Sunday"),
                        ],
                        null=True,
                        verbose_name="day of the week",
                    ),
                ),
                (
                    "day_of_month",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="day of the month"
                    ),
                ),
                ("time", models.TimeField(verbose_name="time")),
                (
                    "time_zone",
                    models.CharField(
                        default=reports.models.delivery.default_time_zone, max_length=64, verbose_name="time zone"
                    ),
                ),
                ("paused", models.BooleanField(default=False, verbose_name="paused")),
                (
                    "next_run_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="next run"),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="report_schedules",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="owner",
                    ),
                ),
                (
                    "recipients",
                    models.ManyToManyField(
                        related_name="+", to=settings.AUTH_USER_MODEL, verbose_name="recipients"
                    ),
                ),
                (
                    "report",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="schedules",
                        to="reports.savedreport",
                        verbose_name="report",
                    ),
                ),
            ],
            options={
                "verbose_name": "report schedule",
                "verbose_name_plural": "report schedules",
                "ordering": ["report__name", "created_at"],
            },
        ),
        migrations.CreateModel(
            name="ScheduleRun",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=cims.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("period_start", models.DateTimeField(verbose_name="period")),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                        verbose_name="state",
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("interruptions", models.PositiveSmallIntegerField(default=0)),
                ("retry_at", models.DateTimeField(blank=True, null=True)),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "schedule",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="runs",
                        to="reports.schedule",
                        verbose_name="schedule",
                    ),
                ),
            ],
            options={
                "verbose_name": "scheduled report run",
                "verbose_name_plural": "scheduled report runs",
                "ordering": ["-period_start"],
            },
        ),
        migrations.CreateModel(
            name="Delivery",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=cims.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Waiting"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("skipped", "Skipped"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                        verbose_name="state",
                    ),
                ),
                ("attached", models.BooleanField(default=False, verbose_name="attached")),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("sent_at", models.DateTimeField(blank=True, null=True, verbose_name="sent")),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "pdf_file",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="reports.generatedfile",
                    ),
                ),
                (
                    "recipient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="recipient",
                    ),
                ),
                (
                    "xlsx_file",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="reports.generatedfile",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="reports.schedulerun",
                        verbose_name="run",
                    ),
                ),
            ],
            options={
                "verbose_name": "scheduled report delivery",
                "verbose_name_plural": "scheduled report deliveries",
                "ordering": ["recipient__username"],
            },
        ),
        migrations.AddIndex(
            model_name="schedule",
            index=models.Index(
                condition=models.Q(("paused", False)),
                fields=["next_run_at"],
                name="reports_schedule_due_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("frequency", "weekly"), _negated=True),
                    ("weekday__isnull", False),
                    _connector="OR",
                ),
                name="reports_schedule_weekly_has_weekday",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("frequency", "monthly"), _negated=True),
                    models.Q(("day_of_month__gte", 1), ("day_of_month__lte", 31)),
                    _connector="OR",
                ),
                name="reports_schedule_monthly_has_day",
            ),
        ),
        migrations.AddIndex(
            model_name="schedulerun",
            index=models.Index(
                condition=models.Q(("state__in", ["queued", "running"])),
                fields=["updated_at"],
                name="reports_schedulerun_open_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedulerun",
            constraint=models.UniqueConstraint(
                fields=("schedule", "period_start"), name="reports_schedulerun_once_per_period"
            ),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                fields=("run", "recipient"), name="reports_delivery_once_per_recipient"
            ),
        ),
    ]
