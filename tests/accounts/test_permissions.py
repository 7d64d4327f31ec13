"""Who sees, changes, deletes and shares which customers: roles, teams, ownership and shares."""

import re

import pytest
from django.urls import reverse

from accounts import audit, permissions
from customers.models import BulkAction, Customer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def book(staff, staff2, manager, teams, make_customer):
    """One customer of each kind of reach, named for who owns it."""
    return {
        "staff": make_customer("甲", owner=staff, team=teams[0]),
        "east-unowned": make_customer("乙", team=teams[0]),
        "manager": make_customer("丙", owner=manager, team=teams[0]),
        "staff2": make_customer("丁", owner=staff2, team=teams[1]),
        "nobody": make_customer("戊"),
    }


def without_nonce(response):
    # The CSRF token is masked afresh for every response too.
    page = re.sub(r'nonce="[^"]*"', "", response.content.decode())
    page = re.sub(r'"X-CSRFToken": "[^"]*"', "", page)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page)


def visible(user):
    return set(permissions.visible_customers(user).values_list("display_name", flat=True))


def changeable(user):
    return set(permissions.changeable_customers(user).values_list("display_name", flat=True))


def test_staff_reaches_only_their_own_customers(staff, book):
    assert visible(staff) == changeable(staff) == {"甲"}


def test_manager_reaches_every_customer_of_their_teams(manager, book):
    assert visible(manager) == changeable(manager) == {"甲", "乙", "丙"}


def test_viewer_sees_their_teams_customers_and_changes_none(viewer, book):
    assert visible(viewer) == {"甲", "乙", "丙"}
    assert changeable(viewer) == set()
    assert not permissions.can(viewer, "change", book["staff"])


def test_administrator_reaches_every_customer(admin_user, book):
    assert visible(admin_user) == changeable(admin_user) == {"甲", "乙", "丙", "丁", "戊"}


def test_auditor_and_inactive_users_see_no_customer(auditor, outsider, book):
    assert visible(auditor) == visible(outsider) == set()


def test_a_share_with_a_colleague_gives_view_then_change_then_nothing(staff, staff2, book):
    customer = book["staff"]
    permissions.share(customer, staff2, "view")
    assert visible(staff2) == {"甲", "丁"}
    assert changeable(staff2) == {"丁"}
    permissions.share(customer, staff2, "change")
    assert changeable(staff2) == {"甲", "丁"}
    assert not permissions.can(staff2, "delete", customer)
    (share,) = permissions.customer_shares(customer)
    permissions.withdraw_share(customer, share.kind, share.pk)
    assert visible(staff2) == {"丁"}


def test_a_share_with_a_team_reaches_its_members(staff, staff2, teams, book):
    permissions.share(book["staff"], teams[1], "view")
    assert visible(staff2) == {"甲", "丁"}
    teams[1].members.remove(staff2)
    assert visible(staff2) == {"丁"}


def test_a_share_never_lifts_a_viewer_above_read_only(viewer, book):
    permissions.share(book["staff2"], viewer, "change")
    assert "丁" in visible(viewer)
    assert changeable(viewer) == set()


def test_staff_cannot_open_others_customer(client, staff, book):
    client.force_login(staff)
    other = client.get(reverse("customers:detail", args=[book["staff2"].pk]))
    missing_pk = Customer().pk
    missing = client.get(reverse("customers:detail", args=[missing_pk]))
    assert other.status_code == missing.status_code == 404
    # The same page (but for its own address and the per-response CSP nonce and CSRF token):
    # nothing tells that the customer exists.
    other_page = without_nonce(other).replace(str(book["staff2"].pk), "<pk>")
    assert other_page == without_nonce(missing).replace(str(missing_pk), "<pk>")
    for name in ("edit", "delete", "interaction_create", "order_create", "consent_create"):
        url = reverse(f"customers:{name}", args=[book["staff2"].pk])
        assert client.get(url).status_code == 404, name
        assert client.post(url).status_code == 404, name


def test_viewer_opens_but_cannot_edit_their_teams_customer(client, viewer, book):
    client.force_login(viewer)
    page = client.get(reverse("customers:detail", args=[book["staff"].pk]))
    assert page.status_code == 200
    assert reverse("customers:edit", args=[book["staff"].pk]) not in page.content.decode()
    edit = client.get(reverse("customers:edit", args=[book["staff"].pk]))
    assert edit.status_code == 403


def test_list_search_and_count_show_only_visible_customers(client, staff, book):
    client.force_login(staff)
    response = client.get(reverse("customers:list"))
    assert [c.display_name for c in response.context["page"].items] == ["甲"]
    assert response.context["count"] == 1
    found = client.get(reverse("customers:list"), {"q": "丁"})
    assert list(found.context["page"].items) == []


def test_duplicate_hint_names_only_customers_the_user_may_see(client, staff, book):
    Customer.objects.filter(pk=book["staff2"].pk).delete()
    hidden = Customer.objects.create(display_name="隐", email="hidden@example.com")
    client.force_login(staff)
    response = client.get(reverse("customers:duplicates"), {"email": "hidden@example.com"})
    assert hidden.display_name not in response.content.decode()


def test_bulk_change_needs_the_role_and_reaches_only_changeable_customers(
    client, staff, manager, book
):
    client.force_login(staff)
    post = {"action": "set_status", "status": "churned", "scope": "all", "confirmed": "1"}
    assert client.post(reverse("customers:bulk"), post).status_code == 403
    bulk = BulkAction.objects.create(
        user=manager, action="set_status", params={"status": "churned"}, query=""
    )
    assert set(bulk.targets().values_list("display_name", flat=True)) == {"甲", "乙", "丙"}


def test_customer_page_masks_sensitive_values_until_shown(client, staff, customer):
    client.force_login(staff)
    page = client.get(customer.get_absolute_url()).content.decode()
    assert "138****8000" in page and "z***@example.com" in page
    assert "zhang.wei@example.com" not in page and "138 0013 8000" not in page
    listing = client.get(reverse("customers:list")).content.decode()
    assert "138****8000" in listing and "zhang.wei@example.com" not in listing


def test_showing_a_value_is_recorded(client, staff, customer):
    client.force_login(staff)
    url = reverse("customers:reveal", args=[customer.pk, "email"])
    response = client.post(url, headers={"HX-Request": "true"})
    assert "zhang.wei@example.com" in response.content.decode()
    entry = audit.AuditEntry.objects.get(action=audit.Action.REVEAL)
    assert entry.customer_id == customer.pk and entry.data["field"] == "email"
    assert entry.actor_id == staff.pk
    # Without htmx the page comes back with that one value shown, once.
    response = client.post(url, follow=True)
    assert "zhang.wei@example.com" in response.content.decode()
    again = client.get(customer.get_absolute_url()).content.decode()
    assert "zhang.wei@example.com" not in again


def test_viewer_cannot_show_sensitive_values(client, viewer, customer):
    client.force_login(viewer)
    page = client.get(customer.get_absolute_url()).content.decode()
    assert reverse("customers:reveal", args=[customer.pk, "phone"]) not in page
    response = client.post(reverse("customers:reveal", args=[customer.pk, "phone"]))
    assert response.status_code == 403
    assert not audit.AuditEntry.objects.filter(action=audit.Action.REVEAL).exists()


def test_unknown_field_cannot_be_shown(client, staff, customer):
    client.force_login(staff)
    response = client.post(reverse("customers:reveal", args=[customer.pk, "notes"]))
    assert response.status_code == 404


def test_owner_shares_and_withdraws_through_the_page(client, staff, staff2, customer):
    client.force_login(staff)
    share_url = reverse("customers:share", args=[customer.pk])
    response = client.post(share_url, {"subject": f"user:{staff2.pk}", "level": "change"})
    assert response.status_code == 302
    assert permissions.can(staff2, "change", customer)
    grant = audit.AuditEntry.objects.get(action=audit.Action.PERMISSION_GRANT)
    assert grant.customer_id == customer.pk and grant.data["level"] == "change"
    (share,) = permissions.customer_shares(customer)
    client.post(reverse("customers:unshare", args=[customer.pk, "user", share.pk]))
    assert not permissions.visible_customers(staff2).filter(pk=customer.pk).exists()
    assert audit.AuditEntry.objects.filter(action=audit.Action.PERMISSION_REVOKE).exists()


def test_sharing_with_nobody_is_a_clear_error(client, staff, customer):
    client.force_login(staff)
    share_url = reverse("customers:share", args=[customer.pk])
    for subject in ("", "user:999999", "team:abc", "group:1"):
        response = client.post(share_url, {"subject": subject, "level": "view"}, follow=True)
        assert response.status_code == 200
        assert "Choose a colleague or a team" in response.content.decode()
    assert permissions.customer_shares(customer) == []


def test_a_colleague_with_a_share_cannot_share_further(client, staff, staff2, viewer, customer):
    permissions.share(customer, staff2, "change")
    client.force_login(staff2)
    response = client.post(
        reverse("customers:share", args=[customer.pk]),
        {"subject": f"user:{viewer.pk}", "level": "view"},
    )
    assert response.status_code == 403


def test_managers_see_who_can_access_a_customer_and_why(manager, staff, staff2, customer):
    permissions.share(customer, staff2, "view")
    rows = {(str(who), reason) for who, _actions, reason in permissions.access_list(customer)}
    assert (str(staff), "owner") in rows
    assert (str(manager), "manages the team 华东销售") in rows
    assert (str(staff2), "shared with them") in rows


def test_access_panel_is_shown_to_managers_not_staff(
    client, manager, staff, customer, verified_login
):
    client.force_login(staff)
    assert client.get(customer.get_absolute_url()).context["access"] is None
    verified_login(client, manager)
    assert client.get(customer.get_absolute_url()).context["access"]


def test_staff_may_hand_customers_only_to_themselves(staff, staff2, manager, admin_user):
    assert set(permissions.assignable_owners(staff)) == {staff}
    assert staff in permissions.assignable_owners(manager)
    assert staff2 not in permissions.assignable_owners(manager)
    assert staff2 in permissions.assignable_owners(admin_user)


@pytest.fixture
def crowd(staff, staff2, manager, viewer, teams, make_customer):
    """Customers spread over every kind of reach, some shared with users and teams."""
    owners = [staff, staff2, manager, None]
    team_choices = [teams[0], teams[1], None]
    crowd = []
    for number in range(36):
        customer = make_customer(
            f"客户{number:02}",
            owner=owners[number % 4],
            team=team_choices[number % 3],
            status="active" if number % 2 else "lead",
        )
        crowd.append(customer)
    permissions.share(crowd[3], staff, "view")
    permissions.share(crowd[7], teams[0], "change")
    permissions.share(crowd[11], viewer, "view")
    return crowd


@pytest.mark.parametrize("persona", ["admin_user", "manager", "staff", "staff2", "viewer"])
def test_list_search_and_count_are_exactly_the_visible_customers(
    persona, request, crowd, client, verified_login
):
    user = request.getfixturevalue(persona)
    verified_login(client, user)
    expected = {str(pk) for pk in permissions.visible_customers(user).values_list("pk", flat=True)}
    for params, condition in [
        ({}, lambda c: True),
        ({"q": "客户1"}, lambda c: c.display_name.startswith("客户1")),
        ({"status": "active"}, lambda c: c.status == "active"),
    ]:
        response = client.get(reverse("customers:list"), {**params, "size": 200})
        shown = {str(c.pk) for c in response.context["page"].items}
        wanted = {str(c.pk) for c in crowd if condition(c)} & expected
        assert shown == wanted, params
        assert response.context["count"] == len(wanted), params


@pytest.mark.parametrize("persona", ["admin_user", "manager"])
def test_bulk_actions_reach_exactly_the_changeable_customers(persona, request, crowd):
    user = request.getfixturevalue(persona)
    bulk = BulkAction.objects.create(
        user=user, action="add_tags", params={"tags": ["x"]}, query="status=active"
    )
    expected = set(permissions.changeable_customers(user).filter(status="active"))
    assert set(bulk.targets()) == expected
    bulk.run()
    tagged = set(Customer.objects.filter(tags__contains=["x"]))
    assert tagged == expected
