"""Administrators manage users, roles and teams in the app, under /manage/.

A form sent with mistakes comes back (200) with a message beside each field, as the customer
forms do; only a user list query that cannot be read is a 400.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import audit, roles
from accounts.manage_forms import DeactivateUserForm, UserEditForm
from accounts.models import Team
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

User = get_user_model()
NEW_PASSWORD = "Plum-blossom-river-2026"


@pytest.fixture
def signed_in(verified_login):
    """signed_in(user): a client of `user` past the second factor, which the two-factor
    middleware asks of administrators and managers. Server errors come back as responses."""
    return lambda user: verified_login(Client(raise_request_exception=False), user)


def role(name):
    return Group.objects.get(name=name)


def permission(name):
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def entries(action, target):
    return list(
        audit.AuditEntry.objects.filter(
            action=action, object_type=target._meta.label_lower, object_id=str(target.pk)
        ).order_by("seq")
    )


@pytest.fixture
def chief(db):
    """An administrator by role alone, not a superuser: the role is what opens /manage/."""
    return make_user("chief", role=roles.ADMINISTRATOR, first_name="Ada", last_name="Chen")


@pytest.fixture
def admin(signed_in, chief):
    return signed_in(chief)


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


# Who may use the pages


LISTS = ("/manage/users/", "/manage/roles/", "/manage/teams/")


def manage_urls(user, team):
    staff_role = role(roles.STAFF)
    return [
        reverse("manage:users"),
        reverse("manage:user_create"),
        reverse("manage:user_edit", args=[user.pk]),
        reverse("manage:user_deactivate", args=[user.pk]),
        reverse("manage:user_reactivate", args=[user.pk]),
        reverse("manage:user_reset_two_factor", args=[user.pk]),
        reverse("manage:roles"),
        reverse("manage:role_create"),
        reverse("manage:role_edit", args=[staff_role.pk]),
        reverse("manage:role_delete", args=[staff_role.pk]),
        reverse("manage:teams"),
        reverse("manage:team_create"),
        reverse("manage:team_edit", args=[team.pk]),
        reverse("manage:team_delete", args=[team.pk]),
    ]


@pytest.mark.parametrize("persona", ["manager", "staff", "viewer", "auditor"])
def test_only_administrators_open_the_manage_pages(request, signed_in, persona, staff2, teams):
    user = request.getfixturevalue(persona)
    client = signed_in(user)
    for url in manage_urls(staff2, teams[1]):
        assert client.get(url).status_code == 403, url
        if url not in LISTS:
            assert client.post(url, {"name": "x", "role": "1"}).status_code == 403, url
    staff2.refresh_from_db()
    assert staff2.is_active
    assert Team.objects.filter(pk=teams[1].pk).exists()


def test_anonymous_visitor_is_sent_to_sign_in(client, staff, teams):
    for url in manage_urls(staff, teams[0]):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_administrator_opens_every_manage_page(admin, staff, teams, customer):
    for url in manage_urls(staff, teams[0]):
        assert admin.get(url).status_code == 200, url


def test_every_manage_page_renders_in_chinese(admin, staff, teams, customer):
    for url in manage_urls(staff, teams[0]):
        response = admin.get(url, headers={"accept-language": "zh-hans"})
        assert response.status_code == 200, url
        assert response["Content-Language"] == "zh-hans"


def test_manage_pages_refuse_other_methods(admin, staff):
    assert admin.put(reverse("manage:users")).status_code == 405
    assert admin.delete(reverse("manage:user_deactivate", args=[staff.pk])).status_code == 405
    assert admin.post(reverse("manage:roles")).status_code == 405


# Users


def test_administrator_creates_a_user_with_role_and_teams_who_can_sign_in(admin, teams):
    response = admin.post(
        reverse("manage:user_create"),
        {
            "username": "li.na",
            "first_name": "娜",
            "last_name": "李",
            "email": "Li.Na@Example.com",
            "language": "zh-hans",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "role": role(roles.STAFF).pk,
            "teams": [teams[0].pk, teams[1].pk],
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("manage:users")
    user = User.objects.get(username="li.na")
    assert user.email == "li.na@example.com"
    assert list(user.groups.filter(team__isnull=True)) == [role(roles.STAFF)]
    assert set(user.teams) == set(teams)

    newcomer = Client()
    signing_in = newcomer.post("/accounts/login/", {"username": "li.na", "password": NEW_PASSWORD})
    assert signing_in.status_code == 302
    assert newcomer.get("/customers/").status_code == 200


def test_new_user_password_must_pass_the_password_validators(admin):
    response = admin.post(
        reverse("manage:user_create"),
        {
            "username": "weak",
            "password1": "12345678",
            "password2": "12345678",
            "role": role(roles.STAFF).pk,
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.filter(username="weak").exists()


def test_username_taken_in_another_case_is_refused(admin, staff):
    response = admin.post(
        reverse("manage:user_create"),
        {
            "username": "STAFF",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "role": role(roles.STAFF).pk,
        },
    )
    assert response.status_code == 200
    assert "username" in response.context["form"].errors


def test_email_of_another_user_is_refused(admin, staff):
    staff.email = "zhang@example.com"
    staff.save()
    response = admin.post(
        reverse("manage:user_create"),
        {
            "username": "zhang2",
            "email": "ZHANG@example.com",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "role": role(roles.STAFF).pk,
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "Another user already has this email address."
    ]


def test_administrator_changes_a_users_role_teams_and_names(admin, staff, teams):
    response = admin.post(
        reverse("manage:user_edit", args=[staff.pk]),
        {
            "first_name": "伟",
            "last_name": "王",
            "email": "",
            "language": "en",
            "role": role(roles.MANAGER).pk,
            "teams": [teams[1].pk],
        },
    )
    assert response.status_code == 302
    staff.refresh_from_db()
    assert staff.display_name == "王伟"
    assert staff.language == "en"
    assert list(staff.groups.filter(team__isnull=True)) == [role(roles.MANAGER)]
    assert list(staff.teams) == [teams[1]]


def test_saving_a_user_with_several_roles_leaves_exactly_one(admin, staff, teams):
    staff.groups.add(role(roles.VIEWER))
    response = admin.post(
        reverse("manage:user_edit", args=[staff.pk]),
        {"role": role(roles.VIEWER).pk, "teams": [teams[0].pk]},
    )
    assert response.status_code == 302
    assert list(staff.groups.filter(team__isnull=True)) == [role(roles.VIEWER)]


def test_user_list_searches_names_and_filters_by_role_team_and_status(
    admin, staff, staff2, manager, outsider, teams
):
    def usernames(query):
        response = admin.get(reverse("manage:users"), query)
        assert response.status_code == 200
        return {user.username for user in response.context["page"]}

    assert usernames({"q": "张伟"}) == {"staff"}
    assert usernames({"q": "mei lin"}) == {"manager"}
    assert usernames({"role": role(roles.STAFF).pk}) == {"staff", "staff2", "outsider"}
    assert usernames({"team": teams[1].pk}) == {"staff2"}
    assert usernames({"role": role(roles.STAFF).pk, "team": teams[0].pk}) == {"staff"}
    assert usernames({"active": "no"}) == {"outsider"}


def test_user_list_shows_role_teams_two_factor_and_last_sign_in(admin, manager, teams):
    content = admin.get(reverse("manage:users"), {"q": "manager"}).content.decode()
    assert "Mei Lin" in content and "Manager" in content and teams[0].name in content
    assert "Required, not set up" in content
    assert "Never" in content


def test_user_list_costs_the_same_queries_however_many_users_it_shows(admin, teams):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin.get(reverse("manage:users")).status_code == 200
        return len(captured)

    make_user("one", role=roles.STAFF, teams=[teams[0]])
    queries()  # The first request of a session also records the session.
    few = queries()
    for number in range(10):
        make_user(f"user{number}", role=roles.MANAGER, teams=teams)
    assert queries() == few


def test_user_list_pages(admin):
    for number in range(60):
        make_user(f"user{number:02}", role=roles.STAFF)
    first = admin.get(reverse("manage:users"))
    assert len(first.context["page"].object_list) == 50
    second = admin.get(reverse("manage:users"), {"page": 2})
    assert len(second.context["page"].object_list) == 61 - 50


def test_deactivating_a_user_ends_their_session_at_once(admin, staff):
    staff_client = Client()
    staff_client.force_login(staff)
    assert staff_client.get("/customers/").status_code == 200
    session_key = staff_client.session.session_key

    response = admin.post(reverse("manage:user_deactivate", args=[staff.pk]))

    assert response.status_code == 302
    staff.refresh_from_db()
    assert not staff.is_active
    assert not Session.objects.filter(session_key=session_key).exists()
    next_page = staff_client.get("/customers/")
    assert next_page.status_code == 302
    assert next_page["Location"].startswith("/accounts/login/")


def test_deactivation_page_asks_for_confirmation(admin, staff):
    response = admin.get(reverse("manage:user_deactivate", args=[staff.pk]))
    assert response.status_code == 200
    staff.refresh_from_db()
    assert staff.is_active


def test_administrator_cannot_deactivate_themselves(admin, chief):
    response = admin.post(reverse("manage:user_deactivate", args=[chief.pk]))
    assert response.status_code == 200
    assert "You cannot deactivate yourself" in response.content.decode()
    chief.refresh_from_db()
    assert chief.is_active


def test_the_last_active_administrator_cannot_be_deactivated_or_demoted(chief, staff):
    # Only reachable when two administrators act at once (each request sees itself as an
    # administrator), so the forms are checked with an actor who no longer is one.
    with transaction.atomic():
        deactivation = DeactivateUserForm({}, user=chief, actor=staff)
        assert not deactivation.is_valid()
        assert "the last active administrator" in deactivation.non_field_errors()[0]
        demotion = UserEditForm({"role": role(roles.STAFF).pk}, instance=chief, actor=staff)
        assert not demotion.is_valid()
        assert "the last active administrator" in demotion.errors["role"][0]


def test_another_administrator_can_be_deactivated(admin, admin_user):
    response = admin.post(reverse("manage:user_deactivate", args=[admin_user.pk]))
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert not admin_user.is_active


def test_administrator_cannot_take_away_their_own_administrator_role(admin, chief):
    response = admin.post(
        reverse("manage:user_edit", args=[chief.pk]), {"role": role(roles.STAFF).pk}
    )
    assert response.status_code == 200
    assert "your own right to manage users" in response.context["form"].errors["role"][0]
    assert chief.groups.filter(name=roles.ADMINISTRATOR).exists()


def test_reactivated_user_can_sign_in_again(admin, outsider):
    response = admin.post(reverse("manage:user_reactivate", args=[outsider.pk]))
    assert response.status_code == 302
    client = Client()
    client.post("/accounts/login/", {"username": "outsider", "password": PASSWORD})
    assert client.get("/customers/").status_code == 200


def test_resetting_two_factor_deletes_every_device(admin, manager):
    TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    TOTPDevice.objects.create(user=manager, name="half set up", confirmed=False)
    StaticDevice.objects.create(user=manager, name="recovery", confirmed=True)

    response = admin.post(reverse("manage:user_reset_two_factor", args=[manager.pk]), follow=True)

    assert response.redirect_chain == [(reverse("manage:user_edit", args=[manager.pk]), 302)]
    assert list(devices_for_user(manager, confirmed=None)) == []
    [message] = messages_of(response)
    assert message.startswith("Two-factor authentication of Mei Lin is reset")


# Roles


def test_role_list_counts_members(admin, staff, staff2, viewer):
    response = admin.get(reverse("manage:roles"))
    counts = {group.name: group.member_count for group in response.context["roles"]}
    assert counts[roles.STAFF] == 2
    assert counts[roles.VIEWER] == 1
    assert counts[roles.ADMINISTRATOR] == 1


def test_role_permission_changes_take_effect_on_the_next_request(admin, signed_in, viewer):
    viewer_client = signed_in(viewer)
    assert viewer_client.get(reverse("manage:users")).status_code == 403
    viewer_role = role(roles.VIEWER)
    granted = [*viewer_role.permissions.all(), permission("accounts.manage_users")]

    response = admin.post(
        reverse("manage:role_edit", args=[viewer_role.pk]),
        {"name": "Renamed", "permissions": [p.pk for p in granted]},
    )

    assert response.status_code == 302
    viewer_role.refresh_from_db()
    assert viewer_role.name == roles.VIEWER  # built-in roles keep their names
    assert viewer_client.get(reverse("manage:users")).status_code == 200

    kept = [p.pk for p in granted if p.codename != "manage_users"]
    admin.post(reverse("manage:role_edit", args=[viewer_role.pk]), {"permissions": kept})
    assert viewer_client.get(reverse("manage:users")).status_code == 403


def test_role_form_leaves_permissions_it_does_not_list(admin):
    staff_role = role(roles.STAFF)
    unlisted = permission("auth.view_group")
    staff_role.permissions.add(unlisted)
    admin.post(reverse("manage:role_edit", args=[staff_role.pk]), {"permissions": []})
    assert list(staff_role.permissions.all()) == [unlisted]


def test_role_form_lists_permissions_by_their_translated_names(admin):
    response = admin.get(reverse("manage:role_edit", args=[role(roles.STAFF).pk]))
    content = response.content.decode()
    for label in (
        "Can view customer",
        "Can view every customer",
        "Can manage users, roles and teams",
    ):
        assert label in content
    assert "Can view group" not in content


def test_administrator_cannot_take_user_management_from_their_own_role(admin):
    admin_role = role(roles.ADMINISTRATOR)
    kept = admin_role.permissions.exclude(codename="manage_users")
    response = admin.post(
        reverse("manage:role_edit", args=[admin_role.pk]), {"permissions": [p.pk for p in kept]}
    )
    assert response.status_code == 200
    assert "lose your own right" in response.context["form"].errors["permissions"][0]
    assert admin_role.permissions.filter(codename="manage_users").exists()


def test_custom_role_is_created_given_to_a_user_and_deleted_once_empty(admin, staff):
    response = admin.post(
        reverse("manage:role_create"),
        {"name": "Exporter", "permissions": [permission("customers.export_customers").pk]},
    )
    assert response.status_code == 302
    exporter = role("Exporter")
    assert [p.codename for p in exporter.permissions.all()] == ["export_customers"]
    staff.groups.add(exporter)

    refused = admin.post(reverse("manage:role_delete", args=[exporter.pk]))
    assert refused.status_code == 200
    assert "1 user still has this role" in refused.content.decode()

    staff.groups.remove(exporter)
    assert admin.post(reverse("manage:role_delete", args=[exporter.pk])).status_code == 302
    assert not Group.objects.filter(name="Exporter").exists()


def test_built_in_role_cannot_be_deleted(admin):
    staff_role = role(roles.STAFF)
    response = admin.post(reverse("manage:role_delete", args=[staff_role.pk]))
    assert response.status_code == 200
    assert "Built-in roles cannot be deleted" in response.content.decode()
    assert Group.objects.filter(pk=staff_role.pk).exists()


@pytest.mark.parametrize("name", ["team:Sales", "Administrator", "administrator", ""])
def test_custom_role_name_is_checked(admin, name):
    response = admin.post(reverse("manage:role_create"), {"name": name})
    assert response.status_code == 200
    assert response.context["form"].errors["name"]


def test_team_pages_do_not_show_team_groups_as_roles(admin, teams):
    response = admin.get(reverse("manage:roles"))
    assert not any(group.name.startswith("team:") for group in response.context["roles"])
    team_group = teams[0].group
    assert admin.get(reverse("manage:role_edit", args=[team_group.pk])).status_code == 404


# Teams


def test_team_list_counts_members_and_customers(admin, staff, manager, viewer, customer, teams):
    response = admin.get(reverse("manage:teams"))
    counts = {t.name: (t.member_count, t.customer_count) for t in response.context["teams"]}
    assert counts == {teams[0].name: (3, 1), teams[1].name: (0, 0)}


def test_administrator_creates_renames_and_sets_members_of_a_team(admin, staff, staff2):
    response = admin.post(
        reverse("manage:team_create"), {"name": "South Sales", "members": [staff.pk]}
    )
    assert response.status_code == 302
    team = Team.objects.get(name="South Sales")
    assert list(team.members.all()) == [staff]

    response = admin.post(
        reverse("manage:team_edit", args=[team.pk]),
        {"name": "华南销售", "members": [staff2.pk]},
    )
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "华南销售"
    assert team.group.name == "team:华南销售"
    assert list(team.members.all()) == [staff2]


def test_team_name_must_be_unique(admin, teams):
    response = admin.post(reverse("manage:team_create"), {"name": teams[1].name})
    assert response.status_code == 200
    assert response.context["form"].errors["name"]


def test_team_with_customers_cannot_be_deleted(admin, customer, teams):
    response = admin.post(reverse("manage:team_delete", args=[teams[0].pk]))
    assert response.status_code == 200
    assert "still has 1 customer" in response.content.decode()
    assert Team.objects.filter(pk=teams[0].pk).exists()
    customer.refresh_from_db()
    assert customer.team == teams[0]


def test_empty_team_is_deleted_with_its_group(admin, staff2, teams):
    group_id = teams[1].group_id
    response = admin.post(reverse("manage:team_delete", args=[teams[1].pk]))
    assert response.status_code == 302
    assert not Team.objects.filter(pk=teams[1].pk).exists()
    assert not Group.objects.filter(pk=group_id).exists()
    assert list(staff2.teams) == []


# Bad input


@pytest.mark.parametrize(
    "query",
    [
        "q=%00",
        "q=" + "张" * 5000,
        "q=%ED%A0%80",
        "role=abc",
        "role=" + "9" * 30,
        "role=-1",
        "team=%00",
        "team=" + "9" * 30,
        "active=perhaps",
        "page=" + "9" * 5000,
        "page=-3",
        "page=%C2%B2",
    ],
)
def test_bad_list_query_is_answered_without_a_server_error(admin, query):
    response = admin.get(reverse("manage:users") + "?" + query)
    assert response.status_code in (200, 400)


@pytest.mark.parametrize(
    "data",
    [
        {"username": "a\x00b", "role": "1"},
        {"username": "x" * 500, "role": "1"},
        {"username": "ok", "role": "abc", "teams": ["xyz"]},
        {"username": "ok", "role": "9" * 30, "teams": ["9" * 30]},
        {"username": "ok", "language": "klingon"},
        {"username": "ok", "email": "not-an-email"},
    ],
)
def test_bad_user_form_input_gets_field_errors(admin, data):
    response = admin.post(
        reverse("manage:user_create"),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, **data},
    )
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not User.objects.filter(username="ok").exists()


@pytest.mark.parametrize(
    "data", [{"permissions": ["abc"]}, {"permissions": ["9" * 30]}, {"name": "x\x00"}]
)
def test_bad_role_form_input_gets_field_errors(admin, data):
    response = admin.post(reverse("manage:role_create"), {"name": "Ok", **data})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Group.objects.filter(name="Ok").exists()


@pytest.mark.parametrize("data", [{"members": ["abc"]}, {"members": ["9" * 30]}, {"name": ""}])
def test_bad_team_form_input_gets_field_errors(admin, teams, data):
    response = admin.post(reverse("manage:team_edit", args=[teams[0].pk]), {"name": "Ok", **data})
    assert response.status_code == 200
    assert response.context["form"].errors
    teams[0].refresh_from_db()
    assert teams[0].name == "华东销售"


@pytest.mark.parametrize("path", ["users/0/", "users/99999999999/", "roles/0/", "teams/0/"])
def test_missing_objects_are_not_found(admin, path):
    assert admin.get("/manage/" + path).status_code == 404


# Audit trail


def test_creating_a_user_is_audited_with_role_and_teams(admin, chief, teams):
    admin.post(
        reverse("manage:user_create"),
        {
            "username": "wang",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "role": role(roles.VIEWER).pk,
            "teams": [teams[1].pk],
        },
    )
    [entry] = entries(audit.Action.USER_CREATE, User.objects.get(username="wang"))
    assert entry.actor_id == chief.pk
    changes = entry.data["changes"]
    assert changes["role"] == [None, roles.VIEWER]
    assert changes["teams"] == [None, [teams[1].name]]
    assert changes["active"] == [None, True]


def test_changing_a_user_is_audited_with_before_and_after(admin, staff, teams):
    admin.post(
        reverse("manage:user_edit", args=[staff.pk]),
        {"first_name": "伟", "last_name": "张", "role": role(roles.MANAGER).pk, "teams": []},
    )
    [role_entry] = entries(audit.Action.ROLE_CHANGE, staff)
    assert role_entry.data["changes"]["role"] == [roles.STAFF, roles.MANAGER]
    [team_entry] = entries(audit.Action.TEAM_CHANGE, staff)
    assert team_entry.data["changes"]["teams"] == [[teams[0].name], []]
    assert entries(audit.Action.USER_UPDATE, staff) == []  # names and email unchanged


def test_deactivation_reactivation_and_two_factor_reset_are_audited(admin, chief, staff):
    admin.post(reverse("manage:user_deactivate", args=[staff.pk]))
    admin.post(reverse("manage:user_reactivate", args=[staff.pk]))
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    admin.post(reverse("manage:user_reset_two_factor", args=[staff.pk]))

    [deactivated] = entries(audit.Action.USER_DEACTIVATE, staff)
    assert deactivated.data["changes"]["active"] == [True, False]
    assert deactivated.actor_id == chief.pk
    [reactivated] = entries(audit.Action.USER_UPDATE, staff)
    assert reactivated.data["changes"]["active"] == [False, True]
    [reset] = entries(audit.Action.TWO_FACTOR, staff)
    assert reset.data["reset"] is True and len(reset.data["devices"]) == 1


def test_role_changes_are_audited(admin):
    admin.post(
        reverse("manage:role_create"),
        {"name": "Exporter", "permissions": [permission("customers.export_customers").pk]},
    )
    exporter = role("Exporter")
    admin.post(
        reverse("manage:role_edit", args=[exporter.pk]),
        {"name": "Exporters", "permissions": [permission("customers.view_customer").pk]},
    )
    admin.post(reverse("manage:role_delete", args=[exporter.pk]))

    created, renamed, deleted = entries(audit.Action.ROLE_CHANGE, exporter)
    assert created.data["changes"] == {
        "name": [None, "Exporter"],
        "permissions": [None, ["customers.export_customers"]],
    }
    assert renamed.data == {"changes": {"name": ["Exporter", "Exporters"]}}
    assert deleted.data["changes"] == {
        "name": ["Exporters", None],
        "permissions": [["customers.view_customer"], None],
    }
    [granted] = entries(audit.Action.PERMISSION_GRANT, exporter)
    assert granted.data == {"permissions": ["customers.view_customer"]}
    [revoked] = entries(audit.Action.PERMISSION_REVOKE, exporter)
    assert revoked.data == {"permissions": ["customers.export_customers"]}


def test_team_changes_are_audited(admin, staff, staff2):
    admin.post(reverse("manage:team_create"), {"name": "South", "members": [staff.pk]})
    team = Team.objects.get(name="South")
    admin.post(
        reverse("manage:team_edit", args=[team.pk]),
        {"name": "South Sales", "members": [staff.pk, staff2.pk]},
    )
    admin.post(reverse("manage:team_delete", args=[team.pk]))

    created, changed, deleted = entries(audit.Action.TEAM_CHANGE, team)
    assert created.data["changes"] == {"name": [None, "South"], "members": [None, ["staff"]]}
    assert changed.data["changes"] == {
        "name": ["South", "South Sales"],
        "members": [["staff"], ["staff", "staff2"]],
    }
    assert deleted.data["changes"] == {
        "name": ["South Sales", None],
        "members": [["staff", "staff2"], None],
    }


def test_refused_changes_leave_no_audit_entry(admin, chief, customer, teams):
    admin.post(reverse("manage:user_deactivate", args=[chief.pk]))
    admin.post(reverse("manage:team_delete", args=[teams[0].pk]))
    assert entries(audit.Action.USER_DEACTIVATE, chief) == []
    assert entries(audit.Action.TEAM_CHANGE, teams[0]) == []
