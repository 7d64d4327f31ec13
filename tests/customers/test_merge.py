"""Merging two customers, and undoing a merge."""

import datetime

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import permissions, roles
from accounts.audit import Action, AuditEntry
from customers import merging
from customers.models import (
    Consent,
    Customer,
    CustomerTeamPermission,
    CustomerUserPermission,
    DuplicateCandidate,
    DuplicateDismissal,
    Interaction,
    Merge,
    Order,
)
from intake.models import Form, ProposedChange, Submission
from tests.conftest import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def world(make_customer, staff, staff2, teams, custom_fields):
    """张伟 (A, older) and 章伟 (B) of the first team, B with every kind of record."""
    a = make_customer(
        "张伟", family_name="张", given_name="伟", email="zhang.wei@example.com",
        phone="+8613800138000", birthday=datetime.date(1990, 1, 2), company="上海华东贸易有限公司",
        city="上海", tags=["vip"], attributes={"hobby": "golf"}, notes="Prefers calls.",
        owner=staff, team=teams[0],
    )  # fmt: skip
    b = make_customer(
        "章伟", family_name="章", given_name="伟", email="zw@example.org", phone="+8613900139000",
        company="上海华东贸易", province="上海市", city="上海", district="黄浦区",
        street="南京东路1号", tags=["vip", "会员"], attributes={"hobby": "tea", "level": "gold"},
        notes="Met at the expo.", owner=staff, team=teams[0],
    )  # fmt: skip
    third = make_customer("李娜", owner=staff, team=teams[0])
    Customer.objects.filter(pk=b.pk).update(created_at=a.created_at + datetime.timedelta(1))
    b.refresh_from_db()
    orders = [
        Order.objects.create(customer=b, external_id=f"SO-{n}", amount="10.00") for n in (1, 2)
    ]
    Order.objects.create(customer=a, external_id="SO-A", amount="5.00")
    interaction = Interaction.objects.create(customer=b, kind="call", summary="Called about tea")
    consent = Consent.objects.create(customer=b, purpose="sms", granted=True)
    form = Form.objects.create(slug="visit", title="到店")
    submission = Submission.objects.create(form=form, customer=b, answers={"score": 5})
    change = ProposedChange.objects.create(
        submission=submission, customer=b, field="city", current_value='"上海"',
        proposed_value='"北京"',
    )  # fmt: skip
    # staff2 sees A and may change B; the second team sees both.
    permissions.share(a, staff2, "view")
    permissions.share(b, staff2, "change")
    permissions.share(a, teams[1], "view")
    permissions.share(b, teams[1], "view")
    first, second = DuplicateDismissal.ordered(b, third)
    DuplicateDismissal.objects.create(customer_a_id=first, customer_b_id=second)
    first, second = DuplicateCandidate.ordered(a, b)
    DuplicateCandidate.objects.create(
        customer_a_id=first, customer_b_id=second, score=90, reasons=["same_pinyin", "same_company"]
    )
    return {
        "a": a, "b": b, "third": third, "orders": orders, "interaction": interaction,
        "consent": consent, "submission": submission, "change": change,
    }  # fmt: skip


def merge_url(world):
    return reverse("duplicates:merge", args=[world["a"].pk, world["b"].pk])


def form_data(client, url, **choices):
    """What the merge page submits with its initial choices, changed by `choices`."""
    form = client.get(url).context["form"]
    data = {name: form[name].value() for name in form.fields}
    data.update(choices)
    return data


def shares(customer):
    users = CustomerUserPermission.objects.filter(content_object=customer)
    teams = CustomerTeamPermission.objects.filter(content_object=customer)
    return sorted(
        [("user", r.user_id, r.permission.codename) for r in users]
        + [("team", r.group_id, r.permission.codename) for r in teams]
    )


def test_merge_keeps_chosen_values_and_moves_every_record(world, manager_client, english):
    a, b = world["a"], world["b"]
    url = merge_url(world)
    data = form_data(
        manager_client, url, survivor="a", take_email="b", take_address="b", attr_hobby="b"
    )
    response = manager_client.post(url, data)
    merge = Merge.objects.get()
    assert response.status_code == 302 and response["Location"] == merge.get_absolute_url()
    assert not Customer.objects.filter(pk=b.pk).exists()
    kept = Customer.objects.get(pk=a.pk)
    assert kept.display_name == "张伟" and kept.phone == "+8613800138000"
    assert kept.email == "zw@example.org"
    assert Customer.objects.with_email("zw@example.org").get() == kept
    assert not Customer.objects.with_email("zhang.wei@example.com").exists()
    assert (kept.city, kept.district, kept.street) == ("上海", "黄浦区", "南京东路1号")
    assert kept.birthday == datetime.date(1990, 1, 2)
    assert kept.tags == ["vip", "会员"]
    assert kept.attributes == {"hobby": "tea", "level": "gold"}
    assert kept.notes == "Prefers calls.\n\nMet at the expo."
    assert kept.version == a.version + 1
    assert set(kept.orders.values_list("external_id", flat=True)) == {"SO-1", "SO-2", "SO-A"}
    assert Interaction.objects.get(pk=world["interaction"].pk).customer_id == a.pk
    assert Consent.objects.get(pk=world["consent"].pk).customer_id == a.pk
    assert Submission.objects.get(pk=world["submission"].pk).customer_id == a.pk
    assert ProposedChange.objects.get(pk=world["change"].pk).customer_id == a.pk
    # "Not duplicates" of the merged customer now holds for the kept one.
    assert DuplicateDismissal.objects.of(a, world["third"]).exists()
    assert not DuplicateCandidate.objects.exists()


def test_shares_are_combined_without_duplicates(world, manager_client, staff2, teams):
    url = merge_url(world)
    manager_client.post(url, form_data(manager_client, url, survivor="a"))
    assert shares(world["a"]) == sorted(
        [("user", staff2.pk, "change_customer"), ("team", teams[1].group_id, "view_customer")]
    )


def test_the_later_customer_can_be_kept_with_the_earlier_ones_values(world, manager_client):
    a, b = world["a"], world["b"]
    url = merge_url(world)
    data = form_data(manager_client, url, survivor="b", take_email="a", take_phone="a")
    assert manager_client.post(url, data).status_code == 302
    kept = Customer.objects.get(pk=b.pk)
    assert not Customer.objects.filter(pk=a.pk).exists()
    # Both unique values came from the removed customer, in the same transaction.
    assert (kept.email, kept.phone) == ("zhang.wei@example.com", "+8613800138000")
    assert Customer.objects.with_phone("+8613800138000").get() == kept
    assert kept.orders.count() == 3


def test_merge_is_refused_when_a_customer_was_edited_meanwhile(world, manager_client, staff):
    url = merge_url(world)
    data = form_data(manager_client, url, survivor="a")
    b = Customer.objects.get(pk=world["b"].pk)
    b.city = "杭州"
    assert b.save_if_unchanged(expected_version=b.version, user=staff)
    response = manager_client.post(url, data)
    assert response.status_code == 409
    assert "after you opened this page" in response.text or "打开" in response.text
    assert Customer.objects.filter(pk=b.pk).exists()
    assert not Merge.objects.exists()
    assert Order.objects.filter(customer=b).count() == 2


def test_bad_choices_are_shown_beside_the_fields(world, manager_client):
    url = merge_url(world)
    data = form_data(manager_client, url, survivor="c", take_email="x")
    response = manager_client.post(url, data)
    assert response.status_code == 400
    assert response.text.count('class="field-error"') >= 1
    assert Customer.objects.filter(pk=world["b"].pk).exists()


def test_merge_is_audited_without_clear_sensitive_values(world, manager_client):
    url = merge_url(world)
    manager_client.post(url, form_data(manager_client, url, survivor="a", take_email="b"))
    entries = AuditEntry.objects.filter(action=Action.CUSTOMER_MERGE)
    assert {e.customer_id for e in entries} == {world["a"].pk, world["b"].pk}
    entry = entries.get(customer_id=world["a"].pk)
    assert "email" in entry.data["taken_from_merged"]
    assert entry.data["moved"]["customers.order.customer_id"] == 2
    assert "zw@example.org" not in entry.details_json()
    assert "zhang.wei@example.com" not in entry.details_json()
    assert entry.data["changes"]["email"][1]["masked"] == "z***@example.org"


def test_opening_the_merge_page_records_the_revealed_values(world, manager_client):
    manager_client.get(merge_url(world))
    reveals = AuditEntry.objects.filter(action=Action.REVEAL)
    assert {e.customer_id for e in reveals} == {world["a"].pk, world["b"].pk}


def test_the_page_shown_again_after_a_refused_merge_records_its_reveals(
    world, manager_client, staff
):
    url = merge_url(world)
    data = form_data(manager_client, url, survivor="a")
    b = Customer.objects.get(pk=world["b"].pk)
    b.phone = "+8613700137000"
    assert b.save_if_unchanged(expected_version=b.version, user=staff)
    before = AuditEntry.objects.filter(action=Action.REVEAL).count()

    response = manager_client.post(url, data)

    assert response.status_code == 409 and "137 0013 7000" in response.text
    reveals = AuditEntry.objects.filter(action=Action.REVEAL).order_by("-seq")
    assert reveals.count() == before + 2
    assert {e.customer_id for e in reveals[:2]} == {world["a"].pk, b.pk}


def test_sensitive_values_are_masked_for_those_who_may_not_read_them(world, teams, verified_login):
    merger = Group.objects.create(name="Merger")
    merger.permissions.set(
        Permission.objects.filter(
            content_type__app_label="customers",
            codename__in=[
                "view_customer", "change_customer", "view_team_customers",
                "change_team_customers", "merge_customers",
            ],
        )
    )  # fmt: skip
    user = make_user("merger", teams=[teams[0]])
    user.groups.add(merger)
    client = verified_login(Client(), user)
    url = merge_url(world)
    page = client.get(url).text
    assert "zw@example.org" not in page and "z***@example.org" in page
    assert "+8613900139000" not in page
    assert not AuditEntry.objects.filter(action=Action.REVEAL).exists()
    # Choosing is still possible.
    client.post(url, form_data(client, url, survivor="a", take_email="b"))
    assert Customer.objects.get(pk=world["a"].pk).email == "zw@example.org"


def test_staff_and_viewers_may_not_merge(world, staff_client, viewer):
    url = merge_url(world)
    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"survivor": "a"}).status_code == 403
    client = Client()
    client.force_login(viewer)
    assert client.post(url, {"survivor": "a"}).status_code == 403
    assert Customer.objects.filter(pk=world["b"].pk).exists()


def test_a_manager_of_another_team_gets_404(world, teams, verified_login):
    CustomerTeamPermission.objects.all().delete()  # the shares that let their team see them
    elsewhere = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    client = verified_login(Client(), elsewhere)
    url = merge_url(world)
    assert client.get(url).status_code == 404
    assert client.post(url, {"survivor": "a"}).status_code == 404
    # Merging one of theirs with one of ours is no different.
    theirs = Customer.objects.create(display_name="张伟", team=teams[1])
    url = reverse("duplicates:merge", args=[theirs.pk, world["a"].pk])
    assert client.get(url).status_code == 404


def test_merge_page_refuses_other_methods_and_one_customer_twice(world, manager_client):
    assert manager_client.put(merge_url(world)).status_code == 405
    a = world["a"]
    assert manager_client.get(reverse("duplicates:merge", args=[a.pk, a.pk])).status_code == 404


# Undoing ------------------------------------------------------------------------------------


def merge_b_into_a(world, user, **choices):
    a = Customer.objects.get(pk=world["a"].pk)
    b = Customer.objects.get(pk=world["b"].pk)
    return merging.merge_customers(
        survivor=a, merged=b, user=user, survivor_version=a.version,
        merged_version=b.version, **choices,
    )  # fmt: skip


def undo_url(merge):
    return reverse("duplicates:undo", args=[merge.pk])


def test_undo_restores_everything_exactly(world, manager, manager_client, staff2, teams):
    a, b = world["a"], world["b"]
    rows = {pk: merging.stored_row(Customer, pk) for pk in (a.pk, b.pk)}
    shares_before = {pk: shares(pk) for pk in (a.pk, b.pk)}
    merge = merge_b_into_a(
        world, manager, take=["email", "phone", "address", "name"], notes="both",
        attributes=["hobby"],
    )  # fmt: skip
    response = manager_client.post(undo_url(merge))
    assert response.status_code == 302 and response["Location"] == b.get_absolute_url()
    # The merged customer is back byte for byte, its encrypted values readable again.
    assert merging.stored_row(Customer, b.pk) == rows[b.pk]
    restored = Customer.objects.get(pk=b.pk)
    assert (restored.email, restored.phone, restored.street) == (
        "zw@example.org", "+8613900139000", "南京东路1号",
    )  # fmt: skip
    kept = merging.stored_row(Customer, a.pk)
    for column in ("version", "updated_at", "updated_by_id"):
        kept.pop(column), rows[a.pk].pop(column)
    assert kept == rows[a.pk]
    assert Customer.objects.get(pk=a.pk).email == "zhang.wei@example.com"
    assert Customer.objects.with_email("zw@example.org").get().pk == b.pk
    assert set(Order.objects.filter(customer=b).values_list("external_id", flat=True)) == {
        "SO-1", "SO-2",
    }  # fmt: skip
    assert Order.objects.get(external_id="SO-A").customer_id == a.pk
    for name in ("interaction", "consent", "submission", "change"):
        record = world[name]
        assert type(record).objects.get(pk=record.pk).customer_id == b.pk, name
    assert {pk: shares(pk) for pk in (a.pk, b.pk)} == shares_before
    assert DuplicateDismissal.objects.of(b, world["third"]).exists()
    assert not DuplicateDismissal.objects.of(a, world["third"]).exists()
    assert DuplicateCandidate.objects.of(a, b).get().score == 90
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == manager
    undo_entry = AuditEntry.objects.filter(action=Action.CUSTOMER_UNMERGE).order_by("-seq")[0]
    assert undo_entry.data["merge"] == str(merge.pk)


def test_undo_keeps_later_edits_after_confirmation(world, manager, manager_client, staff):
    merge = merge_b_into_a(world, manager, take=["email"])
    kept = Customer.objects.get(pk=world["a"].pk)
    kept.job_title = "采购经理"
    kept.tags = [*kept.tags, "复购"]
    assert kept.save_if_unchanged(expected_version=kept.version, user=staff)
    response = manager_client.post(undo_url(merge))
    assert response.status_code == 409
    assert "confirmed" in response.context["form"].errors
    assert not Customer.objects.filter(pk=world["b"].pk).exists()
    response = manager_client.post(undo_url(merge), {"confirmed": "on"})
    assert response.status_code == 302
    kept = Customer.objects.get(pk=world["a"].pk)
    assert kept.job_title == "采购经理"
    assert kept.email == "zhang.wei@example.com"
    assert kept.tags == ["vip", "复购"]
    assert Customer.objects.get(pk=world["b"].pk).email == "zw@example.org"


def test_undo_is_refused_when_a_value_the_merge_set_was_edited_since(
    world, manager, manager_client, staff
):
    merge = merge_b_into_a(world, manager, take=["address"])
    kept = Customer.objects.get(pk=world["a"].pk)
    kept.street = "人民路8号"
    assert kept.save_if_unchanged(expected_version=kept.version, user=staff)
    page = manager_client.get(merge.get_absolute_url())
    assert page.context["problem"]
    response = manager_client.post(undo_url(merge), {"confirmed": "on"})
    assert response.status_code == 302 and response["Location"] == merge.get_absolute_url()
    assert not Customer.objects.filter(pk=world["b"].pk).exists()
    assert Customer.objects.get(pk=world["a"].pk).street == "人民路8号"


def test_undo_is_refused_when_another_customer_took_a_value_since(
    world, manager, manager_client, make_customer
):
    merge = merge_b_into_a(world, manager)  # the kept customer keeps its own email
    newcomer = make_customer("Zoe", email="zw@example.org")
    response = manager_client.post(undo_url(merge))
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=world["b"].pk).exists()
    merge.refresh_from_db()
    assert merge.undone_at is None
    assert Customer.objects.get(pk=newcomer.pk).email == "zw@example.org"
    assert Order.objects.filter(customer=world["a"]).count() == 3


def test_undo_is_refused_after_the_undo_period(world, manager, manager_client, settings):
    merge = merge_b_into_a(world, manager)
    Merge.objects.filter(pk=merge.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=settings.MERGE_UNDO_DAYS + 1)
    )
    manager_client.post(undo_url(merge))
    assert not Customer.objects.filter(pk=world["b"].pk).exists()
    assert merging.clear_expired_snapshots() == 1
    merge.refresh_from_db()
    assert merge.merged_row == {} and merge.snapshots_cleared_at is not None


def test_chained_merges_are_undone_last_first(world, manager, make_customer, teams, staff):
    merge_b_into_a(world, manager)
    first = Merge.objects.get()
    c = make_customer("张伟", owner=staff, team=teams[0])
    a = Customer.objects.get(pk=world["a"].pk)
    second = merging.merge_customers(
        survivor=c, merged=a, user=manager, survivor_version=c.version, merged_version=a.version
    )
    problem, _edited = merging.undo_check(first)
    assert "Undo that merge first" in problem
    with pytest.raises(merging.MergeRefused):
        merging.undo_merge(first, user=manager)
    merging.undo_merge(second, user=manager)
    merging.undo_merge(Merge.objects.get(pk=first.pk), user=manager)
    assert Customer.objects.filter(pk__in=[world["a"].pk, world["b"].pk, c.pk]).count() == 3
    assert Order.objects.filter(customer=world["b"]).count() == 2


def test_undo_refuses_get_staff_viewers_and_other_teams(
    world, manager, staff_client, viewer, teams, verified_login
):
    CustomerTeamPermission.objects.all().delete()  # the shares that let their team see them
    merge = merge_b_into_a(world, manager)
    url = undo_url(merge)
    assert staff_client.post(url).status_code == 403
    client = Client()
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    elsewhere = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    other = verified_login(Client(), elsewhere)
    assert other.post(url).status_code == 404
    assert other.get(merge.get_absolute_url()).status_code == 404
    assert verified_login(Client(), manager).get(url).status_code == 405
    assert not Customer.objects.filter(pk=world["b"].pk).exists()


def test_merge_page_and_kept_customers_page_offer_the_undo(world, manager, manager_client, english):
    merge = merge_b_into_a(world, manager)
    page = manager_client.get(merge.get_absolute_url()).text
    assert "Undo merge" in page and undo_url(merge) in page
    page = manager_client.get(world["a"].get_absolute_url()).text
    assert merge.get_absolute_url() in page
    assert merge.get_absolute_url() in manager_client.get(reverse("duplicates:list")).text
    manager_client.post(undo_url(merge))
    page = manager_client.get(merge.get_absolute_url()).text
    assert "Undo merge" not in page
    assert merge.get_absolute_url() not in manager_client.get(world["a"].get_absolute_url()).text
