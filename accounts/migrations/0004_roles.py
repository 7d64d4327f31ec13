from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import create_roles


def add_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    create_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_permissions"),
        ("customers", "0003_sharing_and_role_permissions"),
    ]

    operations = [migrations.RunPython(add_roles, migrations.RunPython.noop)]
