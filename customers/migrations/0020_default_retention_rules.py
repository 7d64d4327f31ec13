from django.db import migrations

# Off until an administrator turns them on, after a dry run: nothing is erased on upgrade.
DEFAULT_RULES = {
    "unverified_leads": 2 * 365,
    "inactive_churned": 5 * 365,
    "old_submissions": 365,
}


def create_rules(apps, schema_editor):
    RetentionRule = apps.get_model("customers", "RetentionRule")
    for kind, days in DEFAULT_RULES.items():
        RetentionRule.objects.get_or_create(kind=kind, defaults={"days": days, "enabled": False})


def delete_rules(apps, schema_editor):
    apps.get_model("customers", "RetentionRule").objects.filter(
        kind__in=DEFAULT_RULES, enabled=False
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("customers", "0019_retention_rules")]

    operations = [migrations.RunPython(create_rules, delete_rules)]
