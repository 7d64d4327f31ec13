"""Archiving inactive customers, finding and viewing them in the archive, and restoring them."""

import datetime
import io
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import audit, permissions
from accounts.audit import Action, AuditEntry
from customers import archiving
from customers.models import (
    ArchivedCustomer,
    ArchivedInteraction,
    ArchivedOrder,
    Consent,
    Customer,
    DuplicateCandidate,
    DuplicateDismissal,
    Interaction,
    Order,
)
from intake.models import Form, ProposedChange, Submission
from reports.models.metrics import CustomerMetrics

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

LONG_AGO = timezone.now() - datetime.timedelta(days=3 * 365)


def make_inactive(*customers):
    """Date every customer and record of theirs three years back."""
    ids = [c.pk for c in customers]
    Customer.objects.filter(pk__in=ids).update(updated_at=LONG_AGO, created_at=LONG_AGO)
    Order.objects.filter(customer__in=ids).update(ordered_at=LONG_AGO, created_at=LONG_AGO)
    Interaction.objects.filter(customer__in=ids).update(occurred_at=LONG_AGO, created_at=LONG_AGO)
    Consent.objects.filter(customer__in=ids).update(recorded_at=LONG_AGO)
    Submission.objects.filter(customer__in=ids).update(created_at=LONG_AGO)


@pytest.fixture
def world(make_customer, staff, staff2, manager, teams, custom_fields):
    """张伟, inactive for three years, with a record in every table that points at customers;
    李娜, active, who shares a duplicate decision and a conflicting change with him."""
    zhang = make_customer(
        "张伟", family_name="张", given_name="伟", email="zhang.wei@example.com",
        phone="+8613800138000", birthday=datetime.date(1990, 1, 2), street="南京东路1号",
        company="上海华东贸易有限公司", city="上海", tags=["vip", "会员"],
        attributes={"hobby": "golf"}, notes="Prefers calls.", owner=staff, team=teams[0],
        external_id="CRM-1",
    )  # fmt: skip
    li = make_customer("李娜", owner=staff, team=teams[0])
    for n in (1, 2):
        Order.objects.create(customer=zhang, external_id=f"SO-{n}", amount="10.50")
    Interaction.objects.create(customer=zhang, kind="call", summary="Called about tea")
    Interaction.objects.create(customer=zhang, kind="visit", summary="Came to the store")
    Consent.objects.create(customer=zhang, purpose="sms", granted=True)
    Consent.objects.create(customer=zhang, purpose="sms", granted=False)
    form = Form.objects.create(slug="visit", title="到店")
    submission = Submission.objects.create(
        form=form, customer=zhang, answers={"score": 5}, private_answers={"note": "秘密"}
    )
    ProposedChange.objects.create(
        submission=submission, customer=zhang, field="city", current_value='"上海"',
        proposed_value='"北京"', decision="rejected",
    )  # fmt: skip
    other = Submission.objects.create(form=form, customer=li)
    ProposedChange.objects.create(
        submission=other, customer=li, field="phone", conflicting_customer=zhang,
        proposed_value='"+8613800138000"',
    )  # fmt: skip
    permissions.share(zhang, staff2, "view")
    permissions.share(zhang, teams[1], "change")
    a, b = DuplicateDismissal.ordered(zhang, li)
    DuplicateDismissal.objects.create(customer_a_id=a, customer_b_id=b)
    DuplicateCandidate.objects.create(customer_a_id=a, customer_b_id=b, score=70, reasons=["x"])
    CustomerMetrics.objects.filter(customer=zhang).update(
        recency_score=1, frequency_score=2, monetary_score=3, segment="lost"
    )
    make_inactive(zhang)
    return {"zhang": zhang, "li": li}


# Every table with rows about a customer: (table, the condition on its customer column).
RELATED = [
    ("customers_interaction", "customer_id = %s"),
    ("customers_order", "customer_id = %s"),
    ("customers_consent", "customer_id = %s"),
    ("customers_customeruserpermission", "content_object_id = %s"),
    ("customers_customerteampermission", "content_object_id = %s"),
    ("reports_customermetrics", "customer_id = %s"),
    ("intake_submission", "customer_id = %s"),
    ("intake_proposedchange", "customer_id = %s"),
    ("intake_proposedchange", "conflicting_customer_id = %s"),
    ("customers_duplicatecandidate", "customer_a_id = %s OR customer_b_id = %s"),
    ("customers_duplicatedismissal", "customer_a_id = %s OR customer_b_id = %s"),
]
# What a restore changes on purpose: it is an edit of the customer.
EDIT_STAMP = {"updated_at", "updated_by_id", "version"}


def stored(pk):
    """Every stored row about customer `pk`, as to_jsonb gives them, by table and condition."""
    rows = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_jsonb(c) FROM customers_customer c WHERE id = %s", [pk])
        customer = cursor.fetchone()
        rows["customer"] = (
            {k: v for k, v in json.loads(customer[0]).items() if k not in EDIT_STAMP}
            if customer
            else None
        )
        for table, condition in RELATED:
            cursor.execute(
                f"SELECT to_jsonb(t)::text FROM {table} t WHERE {condition} ORDER BY 1",
                [pk] * condition.count("%s"),
            )
            rows[f"{table} {condition}"] = [json.loads(r[0]) for r in cursor.fetchall()]
    return rows


def test_every_reference_to_customers_is_carried_by_archiving():
    assert archiving.customer_references() == archiving.handled_references()


def test_archive_columns_are_those_of_the_live_tables():
    def columns(model, extra):
        return {f.column for f in model._meta.concrete_fields} - extra

    assert columns(ArchivedCustomer, archiving.ARCHIVE_ONLY) == columns(Customer, set())
    assert columns(ArchivedInteraction, {"archived_at"}) == columns(Interaction, set())
    assert columns(ArchivedOrder, {"archived_at"}) == columns(Order, set())


def test_archive_and_restore_keep_every_related_row(world, manager):
    zhang = world["zhang"]
    before = stored(zhang.pk)
    assert all(before.values()), "every related table has a row to keep"

    run = archiving.archive_inactive()

    assert (run.customers, run.interactions, run.orders) == (1, 2, 2)
    gone = stored(zhang.pk)
    assert gone["customer"] is None
    assert not any(rows for key, rows in gone.items() if key != "customer")
    assert ArchivedInteraction.objects.filter(customer_id=zhang.pk).count() == 2
    assert ArchivedOrder.objects.filter(customer_id=zhang.pk).count() == 2
    assert Customer.objects.filter(pk=world["li"].pk).exists()

    restored = archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)

    assert (restored.interactions, restored.orders, restored.dropped) == (2, 2, {})
    assert stored(zhang.pk) == before
    assert not ArchivedCustomer.objects.exists()
    assert not ArchivedInteraction.objects.exists() and not ArchivedOrder.objects.exists()
    customer = Customer.objects.get(pk=zhang.pk)
    assert customer.updated_by == manager and customer.version == zhang.version + 1


def test_archived_values_decrypt_in_the_archive_and_after_restore(world, manager):
    zhang = world["zhang"]
    archiving.archive_inactive()
    archived = ArchivedCustomer.objects.get(pk=zhang.pk)
    assert (archived.phone, archived.email) == ("+8613800138000", "zhang.wei@example.com")
    assert (archived.birthday, archived.street) == (datetime.date(1990, 1, 2), "南京东路1号")

    archiving.restore_customer(archived, user=manager)

    customer = Customer.objects.get(pk=zhang.pk)
    assert (customer.phone, customer.email) == ("+8613800138000", "zhang.wei@example.com")
    assert (customer.birthday, customer.street) == (datetime.date(1990, 1, 2), "南京东路1号")
    assert customer.unreadable_fields() == []
    assert Submission.objects.get(customer=customer).private_answers == {"note": "秘密"}
    change = ProposedChange.objects.get(customer=customer)
    assert (change.current_value, change.proposed_value) == ('"上海"', '"北京"')


def test_archiving_and_restoring_are_audited_and_the_history_stays(world, manager):
    zhang = world["zhang"]
    audit.record(Action.CUSTOMER_UPDATE, target=zhang, data={"changes": {"city": ["", "上海"]}})
    archiving.archive_inactive()
    archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)

    entries = AuditEntry.objects.for_customer(zhang).order_by("seq")
    actions = [e.action for e in entries]
    assert actions == [Action.CUSTOMER_UPDATE, Action.CUSTOMER_ARCHIVE, Action.CUSTOMER_RESTORE]
    restore = entries.last()
    assert restore.actor == manager and restore.data["orders"] == 2
    assert entries.filter(action=Action.CUSTOMER_ARCHIVE).get().object_repr == "张伟"


def test_only_inactive_customers_are_archived(world, make_customer, staff):
    recent_order = make_customer("王芳")
    Order.objects.create(customer=recent_order, external_id="SO-new", amount="1.00")
    recent_call = make_customer("刘洋")
    Interaction.objects.create(customer=recent_call, kind="call", summary="Hello")
    recent_consent = make_customer("陈静")
    Consent.objects.create(customer=recent_consent, purpose="sms", granted=True)
    quiet = make_customer("赵磊")
    make_inactive(recent_order, recent_call, recent_consent, quiet)
    # Their latest record is recent, everything else old.
    Order.objects.filter(customer=recent_order).update(ordered_at=timezone.now())
    Interaction.objects.filter(customer=recent_call).update(occurred_at=timezone.now())
    Consent.objects.filter(customer=recent_consent).update(recorded_at=timezone.now())

    call_command("archive_customers", stdout=io.StringIO())

    assert set(ArchivedCustomer.objects.values_list("display_name", flat=True)) == {"张伟", "赵磊"}
    assert set(Customer.objects.values_list("display_name", flat=True)) == {
        "李娜", "王芳", "刘洋", "陈静"
    }  # fmt: skip


def test_a_customer_with_a_change_waiting_for_review_stays_live(world):
    ProposedChange.objects.filter(customer=world["zhang"]).update(decision="")
    assert archiving.archive_inactive().customers == 0


def test_dry_run_changes_nothing(world, capsys):
    before = stored(world["zhang"].pk)
    audit_entries = AuditEntry.objects.count()

    call_command("archive_customers", "--dry-run")

    out = capsys.readouterr().out
    assert "Dry run: 1 customers" in out and "2 interactions and 2 orders" in out
    assert stored(world["zhang"].pk) == before
    assert not ArchivedCustomer.objects.exists() and AuditEntry.objects.count() == audit_entries


def test_command_prints_what_it_archived(world, capsys):
    call_command("archive_customers", "--batch-size", "1")
    assert "Archived 1 customers" in capsys.readouterr().out


def test_archiving_is_off_with_zero_months(world, settings, capsys):
    settings.ARCHIVE_CUSTOMERS_AFTER_MONTHS = 0
    call_command("archive_customers")
    assert "Archiving is off" in capsys.readouterr().out
    assert archiving.archive_inactive().customers == 0
    assert Customer.objects.filter(pk=world["zhang"].pk).exists()


def test_command_refuses_a_bad_batch_size(world):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("archive_customers", "--batch-size", "0")


def test_restore_leaves_history_archived_for_its_age_in_the_archive(world, manager):
    zhang = world["zhang"]
    # An old month moved to the archive earlier, while the customer was live.
    ArchivedOrder.objects.create(
        id="0190a0a0-0000-7000-8000-0000000000aa", customer_id=zhang.pk, source_system="cims",
        external_id="SO-OLD", ordered_at=LONG_AGO, amount="3.00", currency="CNY",
        channel="store", created_at=LONG_AGO, archived_at=LONG_AGO,
    )  # fmt: skip
    archiving.archive_inactive()
    archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)
    assert Order.objects.filter(customer=zhang).count() == 2
    assert list(ArchivedOrder.objects.values_list("external_id", flat=True)) == ["SO-OLD"]


def test_restore_is_refused_when_a_live_customer_took_the_phone(world, make_customer, manager):
    archiving.archive_inactive()
    make_customer("张伟二", phone="+8613800138000")
    with pytest.raises(archiving.RestoreRefused, match="same mobile number"):
        archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)
    assert ArchivedCustomer.objects.count() == 1
    assert ArchivedOrder.objects.count() == 2 and not Order.objects.exists()


def test_dismissal_with_an_archived_partner_comes_back_with_the_last_restored(world, manager):
    make_inactive(world["li"])
    ProposedChange.objects.filter(customer=world["li"]).update(decision="rejected")
    archiving.archive_inactive()
    assert ArchivedCustomer.objects.count() == 2
    zhang, li = world["zhang"], world["li"]

    archiving.restore_customer(ArchivedCustomer.objects.get(pk=zhang.pk), user=manager)
    assert not DuplicateDismissal.objects.exists()
    archiving.restore_customer(ArchivedCustomer.objects.get(pk=li.pk), user=manager)

    assert DuplicateDismissal.objects.count() == 1
    assert DuplicateCandidate.objects.count() == 1


# Permissions and pages --------------------------------------------------------------------


@pytest.fixture
def archived(world):
    archiving.archive_inactive()
    return ArchivedCustomer.objects.get(pk=world["zhang"].pk)


def test_archived_customers_are_visible_as_live_ones_would_be(
    archived, staff, staff2, manager, viewer, admin_user, auditor, teams
):
    from tests.conftest import make_user

    visible = permissions.visible_archived_customers
    assert archived in visible(staff)  # owner
    assert archived in visible(manager) and archived in visible(viewer)  # team
    assert archived in visible(staff2)  # shared with them, and with their team
    assert archived in visible(admin_user)
    assert archived not in visible(auditor)
    stranger = make_user("stranger", role="Staff", teams=[])
    assert archived not in visible(stranger)
    assert permissions.archived_customer_actions(staff2, archived) == {"view", "change"}
    assert permissions.archived_customer_actions(viewer, archived) == {"view"}


def test_staff_sees_an_archived_customer_read_only_with_history(archived, staff_client):
    response = staff_client.get(reverse("customers:archived_detail", args=[archived.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "张伟" in content and "Archived" in content
    assert "138****8000" in content and "+8613800138000" not in content
    assert "Called about tea" in content and "SO-1" in content
    assert "Restore to live customers" in content
    assert reverse("customers:edit", args=[archived.pk]) not in content


def test_outsider_gets_404_on_archived_page_and_restore(archived, verified_login):
    from tests.conftest import make_user

    stranger = verified_login(Client(), make_user("stranger", role="Staff"))
    page = reverse("customers:archived_detail", args=[archived.pk])
    restore = reverse("customers:archived_restore", args=[archived.pk])
    assert stranger.get(page).status_code == 404
    assert stranger.post(restore).status_code == 404
    assert ArchivedCustomer.objects.filter(pk=archived.pk).exists()


def test_viewer_cannot_restore(archived, client, viewer):
    client.force_login(viewer)
    page = client.get(reverse("customers:archived_detail", args=[archived.pk]))
    assert page.status_code == 200 and "Restore to live customers" not in page.content.decode()
    response = client.post(reverse("customers:archived_restore", args=[archived.pk]))
    assert response.status_code == 403
    assert ArchivedCustomer.objects.filter(pk=archived.pk).exists()


def test_restore_needs_post(archived, staff_client):
    response = staff_client.get(reverse("customers:archived_restore", args=[archived.pk]))
    assert response.status_code == 405
    assert ArchivedCustomer.objects.filter(pk=archived.pk).exists()


def test_staff_restores_an_archived_customer(archived, staff_client, staff):
    response = staff_client.post(reverse("customers:archived_restore", args=[archived.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[archived.pk])
    assert Customer.objects.get(pk=archived.pk).updated_by == staff
    page = staff_client.get(response["Location"])
    assert "is back among the live customers, with 4 history entries" in page.content.decode()
    entry = AuditEntry.objects.filter(action=Action.CUSTOMER_RESTORE).get()
    assert entry.actor == staff and entry.customer_id == archived.pk


def test_restore_refusal_is_a_message_not_an_error(archived, staff_client, make_customer):
    make_customer("另一个", email="zhang.wei@example.com")
    response = staff_client.post(
        reverse("customers:archived_restore", args=[archived.pk]), follow=True
    )
    assert response.status_code == 200
    assert "a live customer now has the same email" in response.content.decode()
    assert ArchivedCustomer.objects.filter(pk=archived.pk).exists()


def test_missing_archived_customer_is_404(staff_client):
    missing = "0190a0a0-0000-7000-8000-000000000000"
    assert staff_client.get(f"/customers/archive/{missing}/").status_code == 404


# Searching the archive from the customer list ----------------------------------------------


def archive_section(response):
    content = response.content.decode()
    start = content.find('id="archive-results"')
    return content[start:] if start >= 0 else ""


@pytest.mark.parametrize(
    "typed", ["张伟", "zhang wei", "zhangwei", "138 0013 8000", "8000", "Zhang.Wei@Example.com"]
)
def test_include_archive_finds_an_archived_customer(archived, staff_client, typed):
    response = staff_client.get(reverse("customers:list"), {"q": typed, "archive": "on"})
    section = archive_section(response)
    assert response.status_code == 200
    assert reverse("customers:archived_detail", args=[archived.pk]) in section
    assert "1 archived customer" in section


def test_without_include_archive_the_list_shows_live_customers_only(archived, staff_client):
    response = staff_client.get(reverse("customers:list"), {"q": "张伟"})
    assert archive_section(response) == ""
    assert reverse("customers:archived_detail", args=[archived.pk]) not in response.content.decode()


def test_archive_search_obeys_the_customer_rules(archived, verified_login):
    from tests.conftest import make_user

    stranger = verified_login(Client(), make_user("stranger", role="Staff"))
    response = stranger.get(reverse("customers:list"), {"q": "张伟", "archive": "on"})
    assert "No archived customers match." in archive_section(response)


def test_archive_search_applies_the_filters(archived, staff_client):
    found = staff_client.get(reverse("customers:list"), {"archive": "on", "tags": "vip"})
    missed = staff_client.get(reverse("customers:list"), {"archive": "on", "status": "churned"})
    assert "1 archived customer" in archive_section(found)
    assert "No archived customers match." in archive_section(missed)


def test_live_only_filters_say_the_archive_cannot_answer_them(archived, staff_client):
    response = staff_client.get(
        reverse("customers:list"), {"archive": "on", "segment": "lost", "q": "张伟"}
    )
    section = archive_section(response)
    assert "The archive cannot be filtered by Customer segment" in section
    assert reverse("customers:archived_detail", args=[archived.pk]) not in section


def test_archive_section_pages_by_name(world, make_customer, staff, teams, staff_client):
    names = [f"Archived {n:02d}" for n in range(30)]
    made = [make_customer(name, owner=staff, team=teams[0]) for name in names]
    archiving.archive_customers([c.pk for c in made])
    first = staff_client.get(reverse("customers:list"), {"archive": "on", "q": "archived"})
    section = archive_section(first)
    assert "30 archived customers" in section
    assert "Archived 00" in section and "Archived 24" in section and "Archived 25" not in section
    next_link = re.search(r'href="\?([^"]*archive_after=[^"#]*)', section).group(1)
    second = staff_client.get(reverse("customers:list") + "?" + next_link.replace("&amp;", "&"))
    section = archive_section(second)
    assert "Archived 25" in section and "Archived 29" in section and "Archived 24" not in section


def test_a_bad_archive_page_link_is_a_400(archived, staff_client):
    response = staff_client.get(reverse("customers:list"), {"archive": "on", "archive_after": "x"})
    assert response.status_code == 400


def test_archiving_many_customers_keeps_the_audit_chain_whole(world, make_customer):
    quiet = [make_customer(f"安静{n}") for n in range(5)]
    make_inactive(*quiet)
    audit.record(Action.LOGIN)
    run = archiving.archive_inactive(batch_size=2)
    audit.record(Action.LOGOUT)
    assert run.customers == 6 and run.batches == 3
    assert audit.verify_trail(with_checkpoints=False).entries == AuditEntry.objects.count()
    archived = AuditEntry.objects.filter(action=Action.CUSTOMER_ARCHIVE)
    assert {e.customer_id for e in archived} == {world["zhang"].pk, *(c.pk for c in quiet)}


def test_rotate_keys_re_encrypts_archived_customers_too(settings, make_customer, manager):
    from cims import crypto

    settings.FIELD_ENCRYPTION_KEYS = f"1:{crypto.new_key()}"
    settings.BLIND_INDEX_KEY = crypto.new_key()
    try:
        live = make_customer("活跃", phone="+8613900001111", email="live@example.com")
        quiet = make_customer("安静", phone="+8613900002222", email="quiet@example.com")
        archiving.archive_customers([quiet.pk])
        settings.FIELD_ENCRYPTION_KEYS += f", 2:{crypto.new_key()}"
        with pytest.raises(CommandError):
            call_command("rotate_keys", "--check", stdout=io.StringIO())

        call_command("rotate_keys", stdout=io.StringIO())

        call_command("rotate_keys", "--check", stdout=io.StringIO())
        with connection.cursor() as cursor:
            cursor.execute("SELECT get_byte(phone, 1) FROM customers_archivedcustomer")
            assert cursor.fetchall() == [(2,)]
        assert ArchivedCustomer.objects.get().phone == "+8613900002222"
        archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)
        assert Customer.objects.get(pk=quiet.pk).email == "quiet@example.com"
        assert Customer.objects.get(pk=live.pk).phone == "+8613900001111"
    finally:
        crypto.reset()


def test_a_link_to_an_archived_customer_leads_to_the_archive(
    archived, staff_client, verified_login
):
    from tests.conftest import make_user

    response = staff_client.get(reverse("customers:detail", args=[archived.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:archived_detail", args=[archived.pk])
    stranger = verified_login(Client(), make_user("stranger", role="Staff"))
    assert stranger.get(reverse("customers:detail", args=[archived.pk])).status_code == 404


def test_dashboard_summaries_follow_archiving_and_restoring(world, manager, make_customer):
    from reports.models.summaries import rebuild_summaries
    from tests.reports.test_dashboard import snapshot

    rebuild_summaries()
    before = snapshot()

    archiving.archive_inactive()
    by_triggers = snapshot()
    rebuild_summaries()
    assert snapshot() == by_triggers != before

    archiving.restore_customer(ArchivedCustomer.objects.get(), user=manager)
    by_triggers = snapshot()
    rebuild_summaries()
    assert snapshot() == by_triggers == before
