from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import REPORTING, grant_new_permissions


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_new_permissions(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), REPORTING
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_audit_actions_for_forms_imports_and_merges"),
        ("reports", "0006_report_schedules"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
