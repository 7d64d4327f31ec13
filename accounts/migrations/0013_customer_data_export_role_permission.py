from django.db import migrations

from accounts.roles import create_all_permissions, grant_new_permissions


def grant(apps, schema_editor):
    create_all_permissions(apps)
    grant_new_permissions(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        ["customers.export_customer_data"],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0012_audit_actions_for_consents_and_data_exports"),
        ("customers", "0017_export_customer_data_permission"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
