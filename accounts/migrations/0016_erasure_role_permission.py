from django.db import migrations

from accounts.roles import ERASURE, create_all_permissions, grant_new_permissions


def grant(apps, schema_editor):
    create_all_permissions(apps)
    grant_new_permissions(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), ERASURE
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0015_audit_actions_for_erasure"),
        ("customers", "0018_erasures"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
