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
]

ROLES = {
    ADMINISTRATOR: [
        *CUSTOMER_WORK,
        "customers.view_all_customers",
        "customers.change_all_customers",
        "customers.bulk_change_customers",
        "customers.export_customers",
        "accounts.manage_users",
        "accounts.view_audit_trail",
    ],
    MANAGER: [
        *CUSTOMER_WORK,
        "customers.view_team_customers",
        "customers.change_team_customers",
        "customers.bulk_change_customers",
        "customers.export_customers",
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
    """Create the built-in roles with their permissions; leaves existing roles as edited."""
    for name, perms in ROLES.items():
        group, created = group_model.objects.get_or_create(name=name)
        if created:
            group.permissions.set(_permissions(permission_model, perms))


def _permissions(permission_model, perms):
    found = []
    for perm in perms:
        app_label, codename = perm.split(".")
        found.append(
            permission_model.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return found
