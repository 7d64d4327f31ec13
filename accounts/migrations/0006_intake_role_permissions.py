from django.db import migrations

from accounts.roles import create_all_permissions, grant_new_permissions

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
    create_all_permissions(apps)
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
