"""Pages where administrators manage users, roles and teams, instead of the Django admin.

Every view starts by checking `can_manage_users`; every change is recorded in the audit trail
inside the transaction that makes it.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import audit, roles, two_factor
from accounts.manage_forms import (
    DeactivateUserForm,
    DeleteRoleForm,
    DeleteTeamForm,
    RoleForm,
    TeamForm,
    UserCreateForm,
    UserEditForm,
    UserFilter,
    permission_label,
    role_of,
    role_permissions,
    role_queryset,
)
from accounts.models import Team
from accounts.permissions import can_manage_users
from accounts.sessions import end_sessions
from customers.models import Customer

User = get_user_model()
USERS_PER_PAGE = 50


def _posted(request):
    # Not `request.POST or None`: a form with every box unticked sends nothing, and must
    # still be bound.
    return request.POST if request.method == "POST" else None


@require_GET
def index(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    return redirect("manage:users")


# Users


@require_GET
def user_list(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    filterset = UserFilter(request.GET, queryset=_user_rows())
    if not filterset.is_valid():
        return render(request, "accounts/manage/user_list.html", {"filter": filterset}, status=400)
    page = Paginator(filterset.qs, USERS_PER_PAGE).get_page(request.GET.get("page"))
    for user in page:
        user.role_label = ", ".join(str(roles.label(group.name)) for group in user.role_groups)
        user.two_factor_required = user.is_superuser or any(
            group.name in roles.TWO_FACTOR_REQUIRED for group in user.role_groups
        )
    return render(request, "accounts/manage/user_list.html", {"filter": filterset, "page": page})


def _user_rows():
    return User.objects.annotate(
        two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True))
    ).prefetch_related(
        Prefetch("groups", queryset=role_queryset(), to_attr="role_groups"),
        Prefetch(
            "groups",
            queryset=Group.objects.filter(team__isnull=False).select_related("team"),
            to_attr="team_groups",
        ),
    )


@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def user_create(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    form = UserCreateForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
                data = {"changes": audit.changes({}, _audited(user))}
                audit.record(audit.Action.USER_CREATE, target=user, data=data, request=request)
        except IntegrityError:
            form.add_error("username", _("A user with this username was created just now."))
        else:
            messages.success(request, _("User %(name)s created.") % {"name": user})
            return redirect("manage:users")
    return render(request, "accounts/manage/user_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def user_edit(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    user = get_object_or_404(User, pk=pk)
    before = _audited(user)
    form = UserEditForm(_posted(request), instance=user, actor=request.user)
    if request.method == "POST":
        # Validated in the transaction that saves: the check that an administrator remains
        # holds its locks until the change is committed.
        with transaction.atomic():
            if saved := form.is_valid():
                form.save()
                _audit_user_changes(request, user, before)
        if saved:
            messages.success(request, _("Changes to %(name)s saved.") % {"name": user})
            return redirect("manage:users")
    context = {"form": form, "account": user, "two_factor": _two_factor_status(user)}
    return render(request, "accounts/manage/user_form.html", context)


def _audited(user):
    """What the audit trail compares before and after a change to a user."""
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "language": user.language,
        "active": user.is_active,
        "role": getattr(role_of(user), "name", None),
        "teams": sorted(team.name for team in user.teams),
    }


def _audit_user_changes(request, user, before):
    # Role and team changes get their own entries, so that an auditor can search for them.
    changes = audit.changes(before, _audited(user))
    role, teams = changes.pop("role", None), changes.pop("teams", None)
    if changes:
        audit.record(
            audit.Action.USER_UPDATE, target=user, data={"changes": changes}, request=request
        )
    if role:
        data = {"changes": {"role": role}}
        audit.record(audit.Action.ROLE_CHANGE, target=user, data=data, request=request)
    if teams:
        data = {"changes": {"teams": teams}}
        audit.record(audit.Action.TEAM_CHANGE, target=user, data=data, request=request)


def _two_factor_status(user):
    enabled, required = two_factor.status(user)
    return {
        "enabled": enabled,
        "required": required,
        "devices": sum(1 for _device in devices_for_user(user, confirmed=None)),
        "recovery_codes": two_factor.recovery_codes_left(user),
    }


@require_http_methods(["GET", "POST"])
def user_deactivate(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    user = get_object_or_404(User, pk=pk)
    with transaction.atomic():
        # Bound even to a GET's empty data, so that the page says at once why it cannot be done.
        form = DeactivateUserForm(request.POST, user=user, actor=request.user)
        if done := form.is_valid() and request.method == "POST":
            user.is_active = False
            user.save(update_fields=["is_active"])
            end_sessions(user)
            audit.record(
                audit.Action.USER_DEACTIVATE,
                target=user,
                data={"changes": {"active": [True, False]}},
                request=request,
            )
    if done:
        messages.success(request, _("%(name)s is deactivated and signed out.") % {"name": user})
        return redirect("manage:user_edit", user.pk)
    context = {
        "form": form,
        "account": user,
        "title": _("Deactivate %(name)s?") % {"name": user},
        "explanation": _(
            "They are signed out at once on every device and cannot sign in until an "
            "administrator reactivates them. Their customers and history stay as they are."
        ),
        "button": _("Deactivate"),
        "danger": True,
        "cancel": reverse("manage:user_edit", args=[user.pk]),
    }
    return render(request, "accounts/manage/confirm.html", context)


@require_http_methods(["GET", "POST"])
def user_reactivate(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    user = get_object_or_404(User, pk=pk)
    if request.method == "POST":
        with transaction.atomic():
            if not user.is_active:
                user.is_active = True
                user.save(update_fields=["is_active"])
                audit.record(
                    audit.Action.USER_UPDATE,
                    target=user,
                    data={"changes": {"active": [False, True]}},
                    request=request,
                )
        messages.success(request, _("%(name)s can sign in again.") % {"name": user})
        return redirect("manage:user_edit", user.pk)
    context = {
        "account": user,
        "title": _("Reactivate %(name)s?") % {"name": user},
        "explanation": _("They can sign in again with their password, role and teams."),
        "button": _("Reactivate"),
        "cancel": reverse("manage:user_edit", args=[user.pk]),
    }
    return render(request, "accounts/manage/confirm.html", context)


@require_http_methods(["GET", "POST"])
def user_reset_two_factor(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    user = get_object_or_404(User, pk=pk)
    if request.method == "POST":
        with transaction.atomic():
            devices = list(devices_for_user(user, confirmed=None))
            for device in devices:
                device.delete()
            audit.record(
                audit.Action.TWO_FACTOR,
                target=user,
                data={"reset": True, "devices": [device.persistent_id for device in devices]},
                request=request,
            )
        messages.success(
            request,
            _(
                "Two-factor authentication of %(name)s is reset; they set it up again at their "
                "next sign-in if their role requires it."
            )
            % {"name": user},
        )
        return redirect("manage:user_edit", user.pk)
    context = {
        "account": user,
        "title": _("Reset two-factor authentication of %(name)s?") % {"name": user},
        "explanation": _(
            "Their authenticator app and recovery codes stop working. Do this when they have "
            "lost their phone; if their role requires two-factor authentication they set it up "
            "again at their next sign-in."
        ),
        "button": _("Reset two-factor authentication"),
        "danger": True,
        "cancel": reverse("manage:user_edit", args=[user.pk]),
    }
    return render(request, "accounts/manage/confirm.html", context)


# Roles


@require_GET
def role_list(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    listed = role_permissions()
    rows = (
        role_queryset()
        .annotate(member_count=Count("user"))
        .prefetch_related(Prefetch("permissions", queryset=listed, to_attr="listed_permissions"))
    )
    for role in rows:
        role.label = roles.label(role.name)
        role.builtin = role.name in roles.ROLES
        role.two_factor_required = role.name in roles.TWO_FACTOR_REQUIRED
        role.permission_labels = [permission_label(p) for p in role.listed_permissions]
    return render(request, "accounts/manage/role_list.html", {"roles": rows})


@require_http_methods(["GET", "POST"])
def role_create(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    form = RoleForm(_posted(request), actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                role = form.save()
                role.permissions.set(form.cleaned_data["permissions"])
                audit.record(
                    audit.Action.ROLE_CHANGE,
                    target=role,
                    data={"changes": audit.changes({}, _role_values(role))},
                    request=request,
                )
        except IntegrityError:
            form.add_error("name", _("A role or team with this name was created just now."))
        else:
            messages.success(request, _("Role %(name)s created.") % {"name": role.name})
            return redirect("manage:roles")
    return render(request, "accounts/manage/role_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def role_edit(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    role = get_object_or_404(role_queryset(), pk=pk)
    before_name, before = role.name, set(_permission_names(role))
    form = RoleForm(_posted(request), instance=role, actor=request.user)
    if request.method == "POST":
        # Validated in the transaction that saves, as taking user management away from a role
        # must leave an administrator (see RoleForm.clean_permissions).
        with transaction.atomic():
            if saved := form.is_valid():
                form.save()
                listed = role_permissions()
                role.permissions.remove(*listed.exclude(pk__in=form.cleaned_data["permissions"]))
                role.permissions.add(*form.cleaned_data["permissions"])
                _audit_role_changes(request, role, before_name, before)
        if saved:
            messages.success(request, _("Role %(name)s saved.") % {"name": roles.label(role.name)})
            return redirect("manage:roles")
    context = {"form": form, "role": role, "label": roles.label(before_name)}
    return render(request, "accounts/manage/role_form.html", context)


def _role_values(role):
    return {"name": role.name, "permissions": _permission_names(role)}


def _permission_names(role):
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all())


def _audit_role_changes(request, role, before_name, before):
    after = set(_permission_names(role))
    if role.name != before_name:
        data = {"changes": {"name": [before_name, role.name]}}
        audit.record(audit.Action.ROLE_CHANGE, target=role, data=data, request=request)
    if granted := sorted(after - before):
        data = {"permissions": granted}
        audit.record(audit.Action.PERMISSION_GRANT, target=role, data=data, request=request)
    if revoked := sorted(before - after):
        data = {"permissions": revoked}
        audit.record(audit.Action.PERMISSION_REVOKE, target=role, data=data, request=request)


@require_http_methods(["GET", "POST"])
def role_delete(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    role = get_object_or_404(role_queryset(), pk=pk)
    with transaction.atomic():
        form = DeleteRoleForm(request.POST, role=role)
        if done := form.is_valid() and request.method == "POST":
            audit.record(
                audit.Action.ROLE_CHANGE,
                target=role,
                data={"changes": audit.changes(_role_values(role), {})},
                request=request,
            )
            role.delete()
    if done:
        messages.success(request, _("Role %(name)s deleted.") % {"name": role.name})
        return redirect("manage:roles")
    context = {
        "form": form,
        "title": _("Delete the role %(name)s?") % {"name": roles.label(role.name)},
        "explanation": _("The role and its permissions are deleted. This cannot be undone."),
        "button": _("Delete"),
        "danger": True,
        "cancel": reverse("manage:roles"),
    }
    return render(request, "accounts/manage/confirm.html", context)


# Teams


def _count(queryset):
    # A correlated COUNT per row: joining both members and customers to count them in one
    # query would multiply the rows, and teams can hold hundreds of thousands of customers.
    count = Func(F("pk"), function="COUNT", output_field=IntegerField())
    counted = queryset.order_by().annotate(n=count).values("n")
    return Coalesce(Subquery(counted), 0)


@require_GET
def team_list(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    teams = Team.objects.annotate(
        member_count=_count(User.groups.through.objects.filter(group=OuterRef("group_id"))),
        customer_count=_count(Customer.objects.filter(team=OuterRef("pk"))),
    )
    return render(request, "accounts/manage/team_list.html", {"teams": teams})


@require_http_methods(["GET", "POST"])
def team_create(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    form = TeamForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                team = form.save()
                audit.record(
                    audit.Action.TEAM_CHANGE,
                    target=team,
                    data={"changes": audit.changes({}, _team_values(team))},
                    request=request,
                )
        except IntegrityError:
            form.add_error("name", _("A team with this name was created just now."))
        else:
            messages.success(request, _("Team %(name)s created.") % {"name": team})
            return redirect("manage:teams")
    return render(request, "accounts/manage/team_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def team_edit(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    team = get_object_or_404(Team, pk=pk)
    before = _team_values(team)
    form = TeamForm(_posted(request), instance=team)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                form.save()
                if changes := audit.changes(before, _team_values(team)):
                    audit.record(
                        audit.Action.TEAM_CHANGE,
                        target=team,
                        data={"changes": changes},
                        request=request,
                    )
        except IntegrityError:
            form.add_error("name", _("A team with this name was created just now."))
        else:
            messages.success(request, _("Team %(name)s saved.") % {"name": team})
            return redirect("manage:teams")
    context = {"form": form, "team": team}
    return render(request, "accounts/manage/team_form.html", context)


def _team_values(team):
    return {"name": team.name, "members": sorted(team.members.values_list("username", flat=True))}


@require_http_methods(["GET", "POST"])
def team_delete(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    team = get_object_or_404(Team, pk=pk)
    with transaction.atomic():
        form = DeleteTeamForm(request.POST, team=team)
        if done := form.is_valid() and request.method == "POST":
            audit.record(
                audit.Action.TEAM_CHANGE,
                target=team,
                data={"changes": audit.changes(_team_values(team), {})},
                request=request,
            )
            team.delete()
    if done:
        messages.success(request, _("Team %(name)s deleted.") % {"name": team})
        return redirect("manage:teams")
    context = {
        "form": form,
        "title": _("Delete the team %(name)s?") % {"name": team},
        "explanation": _(
            "Its members stay, without this team. Customers shared with the team are no longer "
            "shared with them. This cannot be undone."
        ),
        "button": _("Delete"),
        "danger": True,
        "cancel": reverse("manage:teams"),
    }
    return render(request, "accounts/manage/confirm.html", context)
