from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import grant_new_permissions

NEW_PERMISSIONS = [
    "intake.view_form",
    "intake.add_form",
    "intake.change_form",
    "intake.delete_form",
    "intake.add_submission",
    "intake.review_submission",
    "customers.import_customers",
    "customers.merge_customers",
]


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_new_permissions(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), NEW_PERMISSIONS
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_audit_trail"),
        ("customers", "0007_import_and_merge_permissions"),
        ("intake", "0001_forms_and_submissions"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
