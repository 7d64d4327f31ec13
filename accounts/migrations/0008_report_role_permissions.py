from django.db import migrations

from accounts.roles import REPORTING, create_all_permissions, grant_new_permissions


def grant(apps, schema_editor):
    create_all_permissions(apps)
    grant_new_permissions(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), REPORTING
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_audit_actions_for_forms_imports_and_merges"),
        ("reports", "0006_report_schedules"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
