from django.apps import AppConfig
from django.apps import apps as global_apps
from django.core import checks
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

from accounts.roles import ROLES


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self):
        # Importing the module connects the audit trail's receivers for sign-in, sign-out and
        # lockouts.
        from accounts import audit, backups, signals  # noqa: F401

        checks.register(audit.check_signing_key, checks.Tags.security, deploy=True)
        checks.register(backups.check_backup_keys, checks.Tags.security, deploy=True)
        post_migrate.connect(create_missing_roles, sender=self)


def create_missing_roles(app_config, apps=global_apps, using="default", **kwargs):
    """Bring back any built-in role that is missing, as a migration first created them.

    Emptying the database (as a test suite does between tests) removes the roles; the
    permissions they hold are recreated by Django after every migrate, and so are they.
    """
    from django.contrib.auth.management import create_permissions

    from accounts.roles import create_roles

    try:
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
    except LookupError:
        return
    if Group.objects.using(using).filter(name__in=ROLES).count() == len(ROLES):
        return
    # Apps after this one have not had their permissions created yet.
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using, apps=apps)
    create_roles(Group, Permission)
