"""Every decision about who may see or change customer data is made in this module.

Views fetch a customer through `get_customer_for` on their first line and start lists from
`Customer.objects.visible_to(user)`; background tasks do the same with the user who asked.
A customer the user may not see is a 404, exactly like one that does not exist.

Two things decide what a user may do with a customer:

- their role (accounts.roles), a set of model-wide permissions that caps what they may do at all
  (a Viewer never edits, whoever shares with them) and says how far their reach goes
  (every customer, their teams' customers, or only their own and those shared with them);
- the customer itself: its owner and team, and shares recorded with django-guardian
  (view or change, granted to a user or to a team's group).
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404

from customers.models import Customer, CustomerTeamPermission, CustomerUserPermission

VIEW, CHANGE, DELETE = "view", "change", "delete"
ACTIONS = (VIEW, CHANGE, DELETE)

# A share for an action also grants the lesser ones: who may change a customer may see it.
SHARE_CODENAMES = {
    VIEW: ("view_customer", "change_customer", "delete_customer"),
    CHANGE: ("change_customer", "delete_customer"),
    DELETE: ("delete_customer",),
}
# Shares a customer's owner or manager may give: seeing it, or seeing and changing it.
SHARE_LEVELS = (VIEW, CHANGE)


def _active(user):
    return user.is_authenticated and user.is_active


def _has(user, perm):
    return user.has_perm(f"customers.{perm}")


def team_ids(user):
    """The ids of the user's teams, read once per user object (so once per request)."""
    if not hasattr(user, "_cims_team_ids"):
        from accounts.models import Team

        user._cims_team_ids = frozenset(
            Team.objects.filter(group__user=user).values_list("id", flat=True)
        )
    return user._cims_team_ids


def _shared_q(user, action):
    """Customers shared with the user, or with one of their teams, for `action`."""
    with_user, with_teams = _shares(user, action)
    return Q(pk__in=with_user) | Q(pk__in=with_teams)


def _shares(user, action):
    """The ids of the customers shared for `action` with the user, and with their teams."""
    codenames = SHARE_CODENAMES[action]
    with_user = CustomerUserPermission.objects.filter(
        user=user, permission__codename__in=codenames
    ).values_list("content_object_id", flat=True)
    with_teams = CustomerTeamPermission.objects.filter(
        group__user=user, permission__codename__in=codenames
    ).values_list("content_object_id", flat=True)
    return with_user, with_teams


def _reach(user, action):
    """(whether the user reaches every customer for `action`, the teams whose customers they
    reach); their own customers and those shared with them come on top."""
    everything, team_wide = {
        VIEW: ("view_all_customers", "view_team_customers"),
        CHANGE: ("change_all_customers", "change_team_customers"),
        DELETE: ("change_all_customers", "change_team_customers"),
    }[action]
    if _has(user, everything) or (action == VIEW and _has(user, "change_all_customers")):
        return True, frozenset()
    if _has(user, team_wide) or (action == VIEW and _has(user, "change_team_customers")):
        return False, team_ids(user)
    return False, frozenset()


def _reach_q(user, action):
    """The customers the user reaches for `action`, as a filter; None means every customer."""
    everything, teams = _reach(user, action)
    if everything:
        return None
    condition = Q(owner=user) | _shared_q(user, action)
    if teams:
        condition |= Q(team__in=teams)
    return condition


def customer_reach(user, action=VIEW):
    """How far `user` reaches for `action`, for figures kept in tables keyed by owner and team
    (the dashboard): None when they may not at all, else (every customer?, team ids). The
    customers they own and `shared_customer_ids` come on top, as in `visible_customers`."""
    if not _active(user) or not _has(user, f"{action}_customer"):
        return None
    return _reach(user, action)


def shared_customer_ids(user, action=VIEW):
    """The ids of the customers shared for `action` with the user or one of their teams."""
    with_user, with_teams = _shares(user, action)
    return set(with_user) | set(with_teams)


def _customers(user, action, queryset):
    queryset = Customer.objects.all() if queryset is None else queryset
    if not _active(user) or not _has(user, f"{action}_customer"):
        return queryset.none()
    condition = _reach_q(user, action)
    return queryset if condition is None else queryset.filter(condition)


def visible_customers(user, queryset=None):
    """The customers `user` may see, as a filter on `queryset` (all customers by default)."""
    return _customers(user, VIEW, queryset)


def changeable_customers(user, queryset=None):
    """The customers `user` may edit (and so change in bulk)."""
    return _customers(user, CHANGE, queryset)


def deletable_customers(user, queryset=None):
    return _customers(user, DELETE, queryset)


def customer_actions(user, customer):
    """The set of actions ("view", "change", "delete") `user` may take on `customer`."""
    cache = customer.__dict__.setdefault("_cims_actions", {})
    if user.pk not in cache:
        cache[user.pk] = frozenset(_actions(user, customer))
    return cache[user.pk]


def _actions(user, customer, shared_codenames=None):
    shared_codenames = shared_codenames or _shared_codenames
    if not _active(user):
        return
    shares = None
    in_team = customer.team_id is not None and customer.team_id in team_ids(user)
    for action in ACTIONS:
        if not _has(user, f"{action}_customer"):
            continue
        everything, team_wide = (
            ("view_all_customers", "view_team_customers")
            if action == VIEW
            else ("change_all_customers", "change_team_customers")
        )
        reach = (
            _has(user, everything)
            or (action == VIEW and _has(user, "change_all_customers"))
            or customer.owner_id == user.pk
            or (in_team and _has(user, team_wide))
            or (in_team and action == VIEW and _has(user, "change_team_customers"))
        )
        if not reach:
            if shares is None:
                shares = shared_codenames(user, customer)
            reach = bool(shares & set(SHARE_CODENAMES[action]))
        if reach:
            yield action


def _shared_codenames(user, customer):
    with_user = CustomerUserPermission.objects.filter(
        user=user, content_object=customer
    ).values_list("permission__codename", flat=True)
    with_teams = CustomerTeamPermission.objects.filter(
        group__user=user, content_object=customer
    ).values_list("permission__codename", flat=True)
    return set(with_user.union(with_teams))


def can(user, action, customer):
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    return action in customer_actions(user, customer)


def get_customer_for(user, pk, action=VIEW):
    """The customer `pk` if `user` may `action` it.

    One the user may not see is a 404, the same as one that does not exist; one they may see
    but not change or delete is a 403.
    """
    customer = get_object_or_404(visible_customers(user).select_related("owner", "team"), pk=pk)
    if not can(user, action, customer):
        raise PermissionDenied
    return customer


def can_erase(user, customer):
    """Erasing a customer's personal data: a role that may erase, and delete access to them."""
    return _active(user) and _has(user, "erase_customer") and can(user, DELETE, customer)


# Archived customers (customers.archiving) obey the same rules: their owner, team and the shares
# they had when archived (kept in share_keys, as "user:<id>:<codename>" and "group:<id>:...").


def _group_ids(user):
    if not hasattr(user, "_cims_group_ids"):
        user._cims_group_ids = frozenset(user.groups.values_list("id", flat=True))
    return user._cims_group_ids


def _share_keys(user, action):
    codenames = SHARE_CODENAMES[action]
    keys = [f"user:{user.pk}:{codename}" for codename in codenames]
    keys += [f"group:{g}:{codename}" for g in sorted(_group_ids(user)) for codename in codenames]
    return keys


def visible_archived_customers(user, queryset=None):
    """The archived customers `user` may see, as a filter on `queryset` (all by default)."""
    from customers.models import ArchivedCustomer

    queryset = ArchivedCustomer.objects.all() if queryset is None else queryset
    if not _active(user) or not _has(user, "view_customer"):
        return queryset.none()
    everything, teams = _reach(user, VIEW)
    if everything:
        return queryset
    condition = Q(owner=user) | Q(share_keys__overlap=_share_keys(user, VIEW))
    if teams:
        condition |= Q(team__in=teams)
    return queryset.filter(condition)


def _archived_shared_codenames(user, archived):
    mine = {f"user:{user.pk}"} | {f"group:{g}" for g in _group_ids(user)}
    return {key.rpartition(":")[2] for key in archived.share_keys if key.rpartition(":")[0] in mine}


def _archived_actions(user, archived):
    cache = archived.__dict__.setdefault("_cims_actions", {})
    if user.pk not in cache:
        cache[user.pk] = frozenset(_actions(user, archived, _archived_shared_codenames))
    return cache[user.pk]


def archived_customer_actions(user, archived):
    """The set of actions ("view", "change") `user` may take on an archived customer; changing
    it means restoring it. Deleting is not offered: only live customers are deleted."""
    return _archived_actions(user, archived) - {DELETE}


def can_erase_archived(user, archived):
    """Erasing an archived customer's personal data: as for a live one (can_erase), with the
    delete access the user would have to the customer were they live."""
    return (
        _active(user)
        and _has(user, "erase_customer")
        and DELETE in _archived_actions(user, archived)
    )


def get_archived_customer_for(user, pk, action=VIEW):
    """The archived customer `pk` if `user` may `action` it: 404 when they may not see it,
    403 when they may see it but not restore it (as for live customers)."""
    if action not in (VIEW, CHANGE):
        raise ValueError(f"Unknown action for archived customers {action!r}")
    archived = get_object_or_404(
        visible_archived_customers(user).select_related("owner", "team"), pk=pk
    )
    if action not in archived_customer_actions(user, archived):
        raise PermissionDenied
    return archived


def can_list_customers(user):
    """Whether the user works with customers at all (an auditor, for one, does not)."""
    return _active(user) and _has(user, "view_customer")


def can_create_customer(user):
    return _active(user) and _has(user, "add_customer")


def can_view_sensitive(user):
    """Whether the user may read phone, email, birthday and street address (one at a time)."""
    return _active(user) and _has(user, "view_sensitive_data")


def can_bulk_change(user):
    return _active(user) and _has(user, "bulk_change_customers")


def can_export(user):
    return _active(user) and _has(user, "export_customers")


def can_export_customer_data(user, customer):
    """Whether the user may download everything held about a customer they may see (a request
    for access or portability): managers and administrators."""
    return _active(user) and _has(user, "export_customer_data") and can(user, VIEW, customer)


def can_share(user, customer):
    """Owners, and those who manage the customer's team, may share it and withdraw shares."""
    if not (_active(user) and _has(user, "share_customer") and can(user, CHANGE, customer)):
        return False
    return (
        customer.owner_id == user.pk
        or _has(user, "change_all_customers")
        or (customer.team_id in team_ids(user) and _has(user, "change_team_customers"))
    )


def can_see_access(user, customer):
    """Managers and administrators see who can access a customer, and why."""
    return _active(user) and (
        _has(user, "change_all_customers")
        or (customer.team_id in team_ids(user) and _has(user, "change_team_customers"))
    )


def can_import(user):
    """Whether the user may import customers from files (which customers an import may update
    is decided per row, by changeable_customers)."""
    return _active(user) and _has(user, "import_customers")


def can_merge(user):
    """Whether the user may look for duplicates and merge them (only pairs of customers they
    may change)."""
    return _active(user) and _has(user, "merge_customers")


def can_view_audit(user):
    return _active(user) and user.has_perm("accounts.view_audit_trail")


def can_manage_users(user):
    return _active(user) and user.has_perm("accounts.manage_users")


def assignable_share_codename(level):
    if level not in SHARE_LEVELS:
        raise ValueError(f"Unknown share level {level!r}")
    return f"{level}_customer"


def access_list(customer):
    """Who can reach `customer`, with what and why: a list of (who, actions, reason) rows.

    `who` is a user or a team; `reason` a short translated explanation.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.utils.translation import gettext as _

    active = get_user_model().objects.filter(is_active=True)
    perms = dict(
        Permission.objects.filter(
            content_type__app_label="customers",
            codename__in=["change_all_customers", "change_team_customers", "view_team_customers"],
        ).values_list("codename", "pk")
    )

    def holders(codename):
        perm = perms[codename]
        return active.filter(
            Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True)
        ).distinct()

    rows = []
    for user in holders("change_all_customers"):
        rows.append((user, _("view, change, delete"), _("administrator: every customer")))
    if customer.owner_id and customer.owner.is_active:
        rows.append((customer.owner, _("view, change, delete"), _("owner")))
    if customer.team_id:
        team = customer.team
        managers = holders("change_team_customers").filter(groups=team.group_id)
        for user in managers:
            reason = _("manages the team %(team)s") % {"team": team}
            rows.append((user, _("view, change, delete"), reason))
        for user in (
            holders("view_team_customers").filter(groups=team.group_id).exclude(pk__in=managers)
        ):
            rows.append((user, _("view"), _("member of the team %(team)s") % {"team": team}))
    for share in customer_shares(customer):
        rows.append((share.subject, share.level_label, share.reason))
    return rows


class Share:
    """One share of a customer with a user or a team, as shown and withdrawn on its page."""

    def __init__(self, kind, row):
        from django.utils.translation import gettext as _

        self.kind, self.pk = kind, row.pk
        self.codename = row.permission.codename
        if kind == "user":
            self.subject = row.user
            self.reason = _("shared with them")
        else:
            self.subject = row.group.team
            self.reason = _("shared with the team")
        self.level = CHANGE if self.codename == "change_customer" else VIEW
        self.level_label = _("view, change") if self.level == CHANGE else _("view")


def customer_shares(customer):
    users = CustomerUserPermission.objects.filter(content_object=customer).select_related(
        "user", "permission"
    )
    teams = CustomerTeamPermission.objects.filter(
        content_object=customer, group__team__isnull=False
    ).select_related("group__team", "permission")
    return [Share("user", row) for row in users] + [Share("team", row) for row in teams]


def assignable_owners(user, current_id=None):
    """The users `user` may make a customer's owner: anyone for administrators, their teams'
    members for managers, themselves for others (plus the current owner, kept as it is)."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).order_by("username")
    if _has(user, "change_all_customers"):
        return users
    condition = Q(pk=user.pk) | Q(pk=current_id)
    if _has(user, "change_team_customers"):
        condition |= Q(groups__team__in=team_ids(user))
    return users.filter(condition).distinct()


def assignable_teams(user, current_id=None):
    from accounts.models import Team

    if _has(user, "change_all_customers"):
        return Team.objects.all()
    return Team.objects.filter(Q(pk__in=team_ids(user)) | Q(pk=current_id))


def share(customer, subject, level):
    """Give a user or a team `level` access to `customer`, replacing any share they had."""
    from guardian.shortcuts import assign_perm, remove_perm

    from accounts.models import Team

    target = subject.group if isinstance(subject, Team) else subject
    for other in SHARE_LEVELS:
        remove_perm(f"customers.{other}_customer", target, customer)
    assign_perm(f"customers.{assignable_share_codename(level)}", target, customer)


def withdraw_share(customer, kind, pk):
    """Withdraw one share of `customer`; returns it, or None if there is no such share."""
    model = {"user": CustomerUserPermission, "team": CustomerTeamPermission}.get(kind)
    if model is None:
        return None
    row = model.objects.filter(content_object=customer, pk=pk).first()
    if row is None:
        return None
    withdrawn = Share(kind, row)
    row.delete()
    return withdrawn
