"""Forms of the pages where administrators manage users, roles and teams.

Checks that keep at least one administrator lock rows (see `lock_administrators`), so the
views validate these forms inside the transaction that saves the change.
"""

import django_filters
import django_filters.fields
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Concat
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts import roles
from accounts.models import Team
from accounts.permissions import can_manage_users
from customers.models import Customer

User = get_user_model()

# Django names its default permissions ("Can view customer") without marking the names for
# translation; listing them here puts them in our catalogue, so gettext() translates every label.
DEFAULT_PERMISSION_NAMES = (
    _("Can view customer"),
    _("Can add customer"),
    _("Can change customer"),
    _("Can delete customer"),
    _("Can view form"),
    _("Can add form"),
    _("Can change form"),
    _("Can delete form"),
    _("Can add saved report"),
    _("Can change saved report"),
    _("Can delete saved report"),
    _("Can add report schedule"),
    _("Can change report schedule"),
    _("Can delete report schedule"),
)


def role_permission_codenames():
    """The permissions a role can be given on its page, as "app.codename", in display order."""
    return [
        *(f"customers.{action}_customer" for action in ("view", "add", "change", "delete")),
        *(f"customers.{codename}" for codename, _name in Customer._meta.permissions),
        *(f"intake.{action}_form" for action in ("view", "add", "change", "delete")),
        "intake.add_submission",
        "intake.review_submission",
        "reports.view_analysis",
        "reports.refresh_metrics",
        *(f"reports.{action}_savedreport" for action in ("add", "change", "delete")),
        *(f"reports.{action}_schedule" for action in ("add", "change", "delete")),
        *(f"accounts.{codename}" for codename, _name in User._meta.permissions),
    ]


def role_permissions():
    """The permissions of `role_permission_codenames`, as a queryset in the same order."""
    names = role_permission_codenames()
    condition, order = Q(pk__in=[]), []
    for position, name in enumerate(names):
        app_label, codename = name.split(".")
        match = Q(content_type__app_label=app_label, codename=codename)
        condition |= match
        order.append(When(match, then=Value(position)))
    return (
        Permission.objects.filter(condition)
        .select_related("content_type")
        .order_by(Case(*order), "pk")
    )


def permission_label(permission):
    return gettext(permission.name)


def role_queryset():
    """Roles are the groups that are not a team's."""
    return Group.objects.filter(team__isnull=True).order_by("name")


def manage_users_permission():
    return Permission.objects.get(content_type__app_label="accounts", codename="manage_users")


def administrators(*, without_role=None):
    """Active users who may manage users: through a role, a permission of their own, or as
    superusers. `without_role` leaves out what that role grants."""
    permission = manage_users_permission()
    granting = Group.objects.filter(permissions=permission)
    if without_role is not None:
        granting = granting.exclude(pk=without_role.pk)
    return (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__in=granting) | Q(user_permissions=permission))
        .distinct()
    )


def lock_administrators():
    """Lock every administrator's row until the transaction ends.

    Two administrators who take away each other's rights at the same moment then take turns,
    and the second one's check (a new query, so a new snapshot) sees the first one's change.
    """
    list(
        User.objects.select_for_update()
        .filter(pk__in=administrators().values("pk"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def other_administrators_exist(user):
    lock_administrators()
    return administrators().exclude(pk=user.pk).exists()


def grants_user_management(user, role):
    """Whether `user` may manage users once `role` is their role."""
    permission = manage_users_permission()
    return (
        user.is_superuser
        or role.permissions.filter(pk=permission.pk).exists()
        or user.user_permissions.filter(pk=permission.pk).exists()
    )


class RoleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return roles.label(obj.name)


class PermissionsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return permission_label(obj)


class RoleFilterField(django_filters.fields.ModelChoiceField):
    def label_from_instance(self, obj):
        return roles.label(obj.name)


class RoleFilter(django_filters.ModelChoiceFilter):
    field_class = RoleFilterField


def _role_field():
    return RoleChoiceField(queryset=role_queryset(), label=_("Role"), empty_label=None)


def _teams_field():
    return forms.ModelMultipleChoiceField(
        queryset=Team.objects.all(),
        label=_("Teams"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


def _language_choices():
    return [("", _("As the browser asks")), *settings.LANGUAGES]


def _clean_email(form):
    # Addresses are compared in lower case; two accounts with one address are a typing mistake.
    email = form.cleaned_data["email"].lower()
    if email and User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk).exists():
        raise ValidationError(_("Another user already has this email address."), code="taken")
    return email


class UserCreateForm(UserCreationForm):
    """A new user with one role, their teams, and a first password they are told in person."""

    role = _role_field()
    teams = _teams_field()

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "first_name", "last_name", "email", "language"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = _language_choices()
        self.fields["password1"].label = _("Initial password")
        self.fields["role"].initial = role_queryset().filter(name=roles.STAFF).first()

    def clean_email(self):
        return _clean_email(self)

    def save(self, commit=True):
        user = super().save(commit=commit)
        if commit:
            set_role_and_teams(user, self.cleaned_data["role"], self.cleaned_data["teams"])
        return user


class UserEditForm(forms.ModelForm):
    role = _role_field()
    teams = _teams_field()

    class Meta:
        model = User
        fields = ["first_name", "last_name", "email", "language"]

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["language"].choices = _language_choices()
        self.initial.setdefault("role", role_of(self.instance))
        self.initial.setdefault("teams", list(self.instance.teams))

    def clean_email(self):
        return _clean_email(self)

    def clean_role(self):
        role, user = self.cleaned_data["role"], self.instance
        if not can_manage_users(user) or grants_user_management(user, role):
            return role
        if user == self.actor:
            raise ValidationError(
                _("You cannot remove your own right to manage users; ask another administrator."),
                code="self",
            )
        if not other_administrators_exist(user):
            raise ValidationError(
                _("%(name)s is the last active administrator; make someone else one first."),
                code="last_administrator",
                params={"name": user},
            )
        return role

    def save(self, commit=True):
        user = super().save(commit=commit)
        if commit:
            set_role_and_teams(user, self.cleaned_data["role"], self.cleaned_data["teams"])
        return user


def role_of(user):
    """The user's role; the first by name if the Django admin gave them several."""
    return role_queryset().filter(user=user).first()


def set_role_and_teams(user, role, teams):
    """Make `role` the user's only role and `teams` their only teams."""
    user.groups.set([role, *(team.group for team in teams)])


class DeactivateUserForm(forms.Form):
    """Nothing to fill in: a confirmation, refused when it would lock administrators out."""

    def __init__(self, *args, user, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.actor = user, actor

    def clean(self):
        if self.user == self.actor:
            raise ValidationError(
                _("You cannot deactivate yourself; ask another administrator."), code="self"
            )
        if not self.user.is_active:
            raise ValidationError(
                _("%(name)s is already deactivated."), code="inactive", params={"name": self.user}
            )
        if can_manage_users(self.user) and not other_administrators_exist(self.user):
            raise ValidationError(
                _("%(name)s is the last active administrator; make someone else one first."),
                code="last_administrator",
                params={"name": self.user},
            )
        return super().clean()


class RoleForm(forms.ModelForm):
    """A role's name (custom roles only: the code knows built-in roles by name) and which of
    the listed permissions it grants. Permissions not listed here are left as they are."""

    permissions = PermissionsField(
        queryset=Permission.objects.none(),
        label=_("Permissions"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Group
        fields = ["name"]
        labels = {"name": _("Name")}

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["permissions"].queryset = role_permissions()
        if self.is_builtin:
            self.fields["name"].disabled = True
        if self.instance.pk:
            self.initial.setdefault(
                "permissions", list(self.instance.permissions.filter(pk__in=role_permissions()))
            )

    @property
    def is_builtin(self):
        return self.instance.pk is not None and self.instance.name in roles.ROLES

    def clean_name(self):
        if self.is_builtin:
            return self.instance.name
        name = self.cleaned_data["name"]
        if name.startswith(Team.group_name("")):
            raise ValidationError(
                _("Role names cannot start with “%(prefix)s”: teams use it."),
                code="team_prefix",
                params={"prefix": Team.group_name("")},
            )
        if name in roles.LABELS.values() or name.casefold() in map(str.casefold, roles.ROLES):
            raise ValidationError(_("A built-in role has this name."), code="builtin")
        return name

    def clean_permissions(self):
        chosen = self.cleaned_data["permissions"]
        management = manage_users_permission()
        removing = (
            self.instance.pk is not None
            and management not in chosen
            and self.instance.permissions.filter(pk=management.pk).exists()
        )
        if removing:
            lock_administrators()
            if not administrators(without_role=self.instance).filter(pk=self.actor.pk).exists():
                raise ValidationError(
                    _(
                        "You would lose your own right to manage users with this change; ask "
                        "another administrator to make it."
                    ),
                    code="self",
                )
        return chosen


class DeleteRoleForm(forms.Form):
    def __init__(self, *args, role, **kwargs):
        super().__init__(*args, **kwargs)
        self.role = role

    def clean(self):
        if self.role.name in roles.ROLES:
            raise ValidationError(
                _("Built-in roles cannot be deleted; change their permissions instead."),
                code="builtin",
            )
        # Locked so that nobody is given the role while it is being deleted: adding a member
        # needs a share lock on the role's row.
        Group.objects.select_for_update().filter(pk=self.role.pk).first()
        if members := self.role.user_set.count():
            raise ValidationError(
                ngettext(
                    "%(count)d user still has this role; give them another role first.",
                    "%(count)d users still have this role; give them another role first.",
                    members,
                ),
                code="members",
                params={"count": members},
            )
        return super().clean()


class MembersField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        # Display names can repeat; usernames cannot.
        name = obj.display_name
        return name if name == obj.username else f"{name} ({obj.username})"


class TeamForm(forms.ModelForm):
    members = MembersField(
        queryset=User.objects.none(),
        label=_("Members"),
        required=False,
        help_text=_("Hold Ctrl (⌘ on a Mac) to choose more than one."),
        widget=forms.SelectMultiple(attrs={"size": 12}),
    )

    class Meta:
        model = Team
        fields = ["name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Deactivated members stay listed, so that saving the form does not drop them unseen.
        members = self.instance.members.all() if self.instance.pk else User.objects.none()
        self.fields["members"].queryset = User.objects.filter(
            Q(is_active=True) | Q(pk__in=members.values("pk"))
        )
        if self.instance.pk:
            self.initial.setdefault("members", list(members))

    def clean_name(self):
        name = self.cleaned_data["name"]
        taken = Group.objects.filter(name=Team.group_name(name))
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.group_id)
        if taken.exists():
            raise ValidationError(_("Another role or team already uses this name."), code="taken")
        return name

    def save(self, commit=True):
        team = super().save(commit=commit)
        if commit:
            team.members.set(self.cleaned_data["members"])
        return team


class DeleteTeamForm(forms.Form):
    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean(self):
        # Locked so that no customer is moved into the team while it is being deleted.
        Team.objects.select_for_update().filter(pk=self.team.pk).first()
        if customers := self.team.customers.count():
            raise ValidationError(
                ngettext(
                    "%(team)s still has %(count)d customer; move it to another team first.",
                    "%(team)s still has %(count)d customers; move them to another team first.",
                    customers,
                ),
                code="customers",
                params={"team": self.team, "count": customers},
            )
        return super().clean()


class UserFilter(django_filters.FilterSet):
    """Search and filters of the user list; lives here as only the manage pages use it."""

    q = django_filters.CharFilter(
        method="search",
        label=_("Search"),
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Username, name or email")}
        ),
    )
    role = RoleFilter(
        queryset=role_queryset(), field_name="groups", label=_("Role"), empty_label=_("Any role")
    )
    team = django_filters.ModelChoiceFilter(
        queryset=Team.objects.all(),
        field_name="groups__team",
        label=_("Team"),
        empty_label=_("Any team"),
    )
    active = django_filters.ChoiceFilter(
        choices=[("yes", _("Active")), ("no", _("Deactivated"))],
        method="filter_active",
        label=_("Status"),
        empty_label=_("Active and deactivated"),
    )

    class Meta:
        model = User
        fields = []

    def search(self, queryset, name, value):
        # Every word must match somewhere; Chinese names are also matched family name first.
        queryset = queryset.annotate(family_first_name=Concat("last_name", "first_name"))
        for word in value.split():
            queryset = queryset.filter(
                Q(username__icontains=word)
                | Q(first_name__icontains=word)
                | Q(last_name__icontains=word)
                | Q(email__icontains=word)
                | Q(family_first_name__icontains=word)
            )
        return queryset

    def filter_active(self, queryset, name, value):
        return queryset.filter(is_active=value == "yes")
