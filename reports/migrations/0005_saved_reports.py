import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import cims.ids

# The pivot (reports/analysis.py) groups customers by the month, quarter or year they signed up
# or first bought in, in TIME_ZONE. Without statistics on those expressions PostgreSQL takes
# every distinct time for a group of its own, expects a million groups and gives up parallel
# workers; with them it knows there are a few hundred. The expressions must stay exactly those
# reports.analysis builds. A changed TIME_ZONE leaves the statistics unused, not wrong.
PERIOD_STATISTICS = [
    ("reports_customer_periods", "customers_customer", "created_at"),
    ("reports_metrics_periods", "reports_customermetrics", "first_order_at"),
]


def create_period_statistics(apps, schema_editor):
    zone = settings.TIME_ZONE.replace("'", "''")
    for name, table, column in PERIOD_STATISTICS:
        expressions = ", ".join(
            f"(date_trunc('{period}', {column} AT TIME ZONE '{zone}'))"
            for period in ("month", "quarter", "year")
        )
        schema_editor.execute(f"CREATE STATISTICS {name} ON {expressions} FROM {table}")
        schema_editor.execute(f"ANALYZE {table}")


def drop_period_statistics(apps, schema_editor):
    for name, _table, _column in PERIOD_STATISTICS:
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("reports", "0004_generated_files"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(create_period_statistics, drop_period_statistics),
        migrations.CreateModel(
            name="SavedReport",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=cims.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("name", models.CharField(max_length=200, verbose_name="name")),
                (
                    "kind",
                    models.CharField(
                        choices=[("report", "Report"), ("analysis", "Analysis")],
                        default="report",
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                ("definition", models.JSONField(default=dict, verbose_name="definition")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="saved_reports",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="owner",
                    ),
                ),
                (
                    "shared_with_groups",
                    models.ManyToManyField(
                        blank=True,
                        related_name="+",
                        to="auth.group",
                        verbose_name="shared with roles and teams",
                    ),
                ),
                (
                    "shared_with_users",
                    models.ManyToManyField(
                        blank=True,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="shared with users",
                    ),
                ),
            ],
            options={
                "verbose_name": "saved report",
                "verbose_name_plural": "saved reports",
                "ordering": ["name", "id"],
                "permissions": [("view_analysis", "Can analyse customers")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("owner", "name"), name="savedreport_unique_name"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["report", "analysis"])),
                        name="savedreport_kind_valid",
                    ),
                ],
            },
        ),
    ]
