from django.db import migrations, models

from reports.models import summaries


def install_and_fill(apps, schema_editor):
    # The same SQL as `manage.py rebuild_dashboard_summaries`: the triggers, then every
    # summary counted from the customers and orders already there.
    summaries.rebuild_summaries(schema_editor.connection)


def uninstall(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in summaries.drop_sql():
            cursor.execute(statement)


def scoped(*fields):
    return [
        ("id", models.BigAutoField(
            auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
        )),
        ("owner_id", models.IntegerField(null=True)),
        ("team_id", models.IntegerField(null=True)),
        *fields,
    ]  # fmt: skip


def key(name, *fields):
    return models.UniqueConstraint(
        fields=("owner_id", "team_id", *fields), name=name, nulls_distinct=False
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_customer_metrics"),
        ("customers", "0010_duplicate_candidates_and_merges"),
    ]

    operations = [
        migrations.CreateModel(
            name="DashboardDeleted",
            fields=[
                ("customer_id", models.UUIDField(primary_key=True, serialize=False)),
                ("owner_id", models.IntegerField(null=True)),
                ("team_id", models.IntegerField(null=True)),
                ("xact", models.BigIntegerField(db_index=True)),
            ],
        ),
        migrations.CreateModel(
            name="DashboardBuyers",
            fields=scoped(
                ("buyers", models.IntegerField(default=0)),
                ("repeat_buyers", models.IntegerField(default=0)),
            ),
        ),
        migrations.CreateModel(
            name="DashboardPlaces",
            fields=scoped(
                ("province", models.CharField(max_length=50)),
                ("status", models.CharField(max_length=20)),
                ("customers", models.IntegerField(default=0)),
            ),
        ),
        migrations.CreateModel(
            name="DashboardRevenue",
            fields=scoped(
                ("day", models.DateField()),
                ("currency", models.CharField(max_length=3)),
                ("orders", models.IntegerField(default=0)),
                ("amount", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
            ),
        ),
        migrations.CreateModel(
            name="DashboardSignups",
            fields=scoped(
                ("month", models.DateField()),
                ("source", models.CharField(max_length=20)),
                ("customers", models.IntegerField(default=0)),
            ),
        ),
        migrations.CreateModel(
            name="DashboardTags",
            fields=scoped(
                ("tag", models.CharField(max_length=50)),
                ("customers", models.IntegerField(default=0)),
            ),
        ),
        # Constraints of CreateModel are only made at the end of the migration; the fill
        # below upserts on them.
        migrations.AddConstraint(
            model_name="dashboardbuyers", constraint=key("dashboard_buyers_key")
        ),
        migrations.AddConstraint(
            model_name="dashboardplaces",
            constraint=key("dashboard_places_key", "province", "status"),
        ),
        migrations.AddConstraint(
            model_name="dashboardrevenue",
            constraint=key("dashboard_revenue_key", "day", "currency"),
        ),
        migrations.AddConstraint(
            model_name="dashboardsignups",
            constraint=key("dashboard_signups_key", "month", "source"),
        ),
        migrations.AddConstraint(
            model_name="dashboardtags", constraint=key("dashboard_tags_key", "tag")
        ),
        migrations.RunPython(install_and_fill, uninstall),
    ]
