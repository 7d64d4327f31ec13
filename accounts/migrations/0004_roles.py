from django.db import migrations

from accounts.roles import create_all_permissions, create_roles


def add_roles(apps, schema_editor):
    create_all_permissions(apps)
    create_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_permissions"),
        ("customers", "0003_sharing_and_role_permissions"),
    ]

    operations = [migrations.RunPython(add_roles, migrations.RunPython.noop)]
