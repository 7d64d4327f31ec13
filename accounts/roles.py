"""The built-in roles: groups of model-wide permissions that administrators may edit.

A role says what kind of thing a user may do; which customers they may do it to is decided per
object in accounts.permissions (ownership, team, shares).
"""

from django.utils.translation import gettext_lazy as _

ADMINISTRATOR, MANAGER, STAFF, VIEWER, AUDITOR = (
    "Administrator",
    "Manager",
    "Staff",
    "Viewer",
    "Auditor",
)

CUSTOMER_WORK = [
    "customers.view_customer",
    "customers.add_customer",
    "customers.change_customer",
    "customers.delete_customer",
    "customers.view_sensitive_data",
    "customers.share_customer",
    # Fill in forms on a customer's behalf, and decide submitted changes to their customers.
    "intake.view_form",
    "intake.add_submission",
    "intake.review_submission",
]

# Build and publish forms and surveys, import files, merge duplicates.
INTAKE_MANAGEMENT = [
    "intake.add_form",
    "intake.change_form",
    "intake.delete_form",
    "customers.import_customers",
    "customers.merge_customers",
]

# Analysis, the report builder and schedules. The dashboard needs no permission: it shows every
# signed-in user figures over the customers they may see. Anyone may run a saved report shared
# with them; it runs with their own permissions.
REPORTING = [
    "reports.view_analysis",
    "reports.refresh_metrics",
    "reports.add_savedreport",
    "reports.change_savedreport",
    "reports.delete_savedreport",
    "reports.add_schedule",
    "reports.change_schedule",
    "reports.delete_schedule",
]

# Erase a customer's personal data for good (right to be forgotten), of customers they may delete.
ERASURE = ["customers.erase_customer"]

ROLES = {
    ADMINISTRATOR: [
        *CUSTOMER_WORK,
        "customers.view_all_customers",
        "customers.change_all_customers",
        "customers.bulk_change_customers",
        "customers.export_customers",
        "customers.export_customer_data",
        *INTAKE_MANAGEMENT,
        *REPORTING,
        *ERASURE,
        "accounts.manage_users",
        "accounts.view_audit_trail",
    ],
    MANAGER: [
        *CUSTOMER_WORK,
        "customers.view_team_customers",
        "customers.change_team_customers",
        "customers.bulk_change_customers",
        "customers.export_customers",
        "customers.export_customer_data",
        *INTAKE_MANAGEMENT,
        *REPORTING,
        *ERASURE,
    ],
    STAFF: CUSTOMER_WORK,
    VIEWER: ["customers.view_customer", "customers.view_team_customers"],
    AUDITOR: ["accounts.view_audit_trail"],
}

LABELS = {
    ADMINISTRATOR: _("Administrator"),
    MANAGER: _("Manager"),
    STAFF: _("Staff"),
    VIEWER: _("Viewer"),
    AUDITOR: _("Auditor"),
}

# Roles whose users must sign in with a second factor.
TWO_FACTOR_REQUIRED = (ADMINISTRATOR, MANAGER)


def label(name):
    """A role's name in the user's language (built-in roles are translated)."""
    return LABELS.get(name, name)


def create_roles(group_model, permission_model):
    """Create the built-in roles with their permissions; leaves existing roles as edited.

    Permissions of apps not yet migrated are left out; the migration that brings them in
    grants them to the roles (grant_new_permissions).
    """
    for name, perms in ROLES.items():
        group, created = group_model.objects.get_or_create(name=name)
        if created:
            group.permissions.set(_permissions(permission_model, perms))


def create_all_permissions(apps):
    """For data migrations: create every app's permissions now.

    Django creates them after all migrations have run; a migration that gives roles permissions
    needs them before.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def grant_new_permissions(group_model, permission_model, perms):
    """Give the built-in roles that exist the new permissions among `perms` that ROLES lists."""
    for group in group_model.objects.filter(name__in=ROLES):
        wanted = [p for p in perms if p in ROLES[group.name]]
        group.permissions.add(*_permissions(permission_model, wanted))


def _permissions(permission_model, perms):
    by_name = {}
    for perm in perms:
        app_label, codename = perm.split(".")
        by_name.setdefault(app_label, []).append(codename)
    found = []
    for app_label, codenames in by_name.items():
        found.extend(
            permission_model.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        )
    return found
