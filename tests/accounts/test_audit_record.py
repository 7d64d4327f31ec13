"""audit.record and audit.changes: what an entry holds and how it chains."""

import datetime
import decimal

import pytest
from django.db import transaction

from accounts import audit
from accounts.audit import AuditEntry


@pytest.mark.django_db
def test_first_entry_chains_from_genesis_and_next_from_it(staff):
    first = audit.record(audit.Action.USER_UPDATE, target=staff, actor=staff)
    second = audit.record(audit.Action.USER_UPDATE, target=staff, actor=staff)

    assert (first.seq, first.prev_hash) == (1, audit.GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    stored = AuditEntry.objects.get(seq=2)
    assert stored.compute_hash() == stored.hash


@pytest.mark.django_db
def test_customer_target_puts_entry_in_that_customers_history(customer, staff):
    audit.record(
        audit.Action.CUSTOMER_UPDATE,
        target=customer,
        actor=staff,
        data={"changes": audit.changes({"city": "上海"}, {"city": "北京"})},
    )

    [entry] = audit.customer_history(customer)
    assert entry.customer_id == customer.pk
    assert entry.object_type == "customers.customer"
    assert entry.object_id == str(customer.pk)
    assert entry.actor_username == "staff"
    assert entry.change_rows()[0][1:] == ("上海", "北京")


@pytest.mark.django_db
def test_customer_given_as_id_is_stored(customer):
    entry = audit.record(audit.Action.REVEAL, customer=str(customer.pk), data={"field": "phone"})

    assert entry.customer_id == customer.pk


@pytest.mark.django_db
def test_rolled_back_change_leaves_no_entry(staff):
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record(audit.Action.USER_UPDATE, target=staff)
        raise RuntimeError

    assert not AuditEntry.objects.exists()
    assert audit.record(audit.Action.USER_UPDATE, target=staff).seq == 1


@pytest.mark.django_db
def test_awkward_data_reads_back_with_the_same_hash():
    audit.record(
        audit.Action.IMPORT,
        data={
            "rate": 1e20,
            "amount": decimal.Decimal("12.50"),
            "day": datetime.date(2026, 1, 2),
            "text": "a\x00b",
            "tags": {"b", "a"},
            3: "int key",
        },
    )

    entry = AuditEntry.objects.get()
    assert entry.data["amount"] == "12.50"
    assert entry.data["day"] == "2026-01-02"
    assert entry.compute_hash() == entry.hash


def test_changes_lists_changed_fields_only():
    assert audit.changes(
        {"city": "上海", "company": "A", "revenue": decimal.Decimal("1.10")},
        {"city": "北京", "company": "A", "revenue": decimal.Decimal("2.00")},
    ) == {"city": ["上海", "北京"], "revenue": ["1.10", "2.00"]}


def test_changes_masks_sensitive_values_and_hashes_them_comparably():
    result = audit.changes(
        {"phone": "+8613800138000", "birthday": datetime.date(1990, 5, 1), "email": ""},
        {"phone": "+8613900139000", "birthday": None, "email": "zhang.wei@example.com"},
    )

    old_phone, new_phone = result["phone"]
    assert old_phone["masked"] == "138****8000"
    assert "13800138000" not in str(result)
    assert old_phone["hash"] != new_phone["hash"]
    assert old_phone["hash"] == audit.changes({"phone": "+8613800138000"}, {})["phone"][0]["hash"]
    assert result["birthday"] == [
        {"masked": "1990-**-**", "hash": result["birthday"][0]["hash"]},
        None,
    ]
    assert result["email"][0] == ""
    assert result["email"][1]["masked"] == "z***@example.com"


@pytest.mark.django_db
def test_entries_cannot_be_changed_or_deleted_through_the_orm(staff):
    entry = audit.record(audit.Action.USER_UPDATE, target=staff)

    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.update(action="login")


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_entries(staff):
    entry = audit.record(audit.Action.USER_UPDATE, target=staff, actor=staff)
    staff_id = staff.pk

    staff.delete()

    stored = AuditEntry.objects.get(seq=entry.seq)
    assert (stored.actor_id, stored.actor_username) == (staff_id, "staff")
    assert stored.compute_hash() == stored.hash


@pytest.mark.django_db
def test_deleting_a_customer_keeps_its_history(customer):
    audit.record(audit.Action.CUSTOMER_DELETE, target=customer)
    customer_id = customer.pk

    customer.delete()

    assert [e.action for e in audit.customer_history(customer_id)] == ["customer.delete"]


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["2001:DB8:0:0::1", "::ffff:198.51.100.2", "fe80::1"])
def test_ipv6_addresses_read_back_with_the_same_hash(rf, address):
    audit.record(audit.Action.LOGIN_FAILED, request=rf.get("/", REMOTE_ADDR=address))

    entry = AuditEntry.objects.get()
    assert entry.compute_hash() == entry.hash


def test_a_settings_change_in_the_admin_is_recorded(admin_client):
    from accounts.audit import Action, AuditEntry

    response = admin_client.post(
        "/admin/customers/customfield/add/",
        {"key": "shoe_size", "label": "鞋码", "type": "number", "choices": "[]", "position": 0},
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action=Action.SETTINGS_CHANGE)
    assert entry.data["model"] == "customfield" and entry.data["change"] == "add"
    assert entry.actor_username == "admin"


def test_deleting_several_objects_in_the_admin_records_each(admin_client):
    from accounts.audit import Action, AuditEntry
    from customers.models import Tag

    tags = [Tag.objects.create(name=name) for name in ("甲", "乙")]
    response = admin_client.post(
        "/admin/customers/tag/",
        {"action": "delete_selected", "_selected_action": [t.pk for t in tags], "post": "yes"},
    )
    assert response.status_code == 302
    deleted = AuditEntry.objects.filter(action=Action.SETTINGS_CHANGE, data__change="delete")
    assert sorted(e.data["object"] for e in deleted) == ["乙", "甲"]


def test_the_admin_does_not_show_sensitive_customer_fields(admin_client, customer):
    content = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/").content
    assert b"zhang.wei@example.com" not in content and b"13800138000" not in content


def test_changes_to_a_user_are_shown_with_field_labels(staff, english):
    from accounts import audit

    entry = audit.record(
        audit.Action.USER_UPDATE,
        target=staff,
        data={"changes": {"first_name": ["伟", "强"], "role": ["Staff", "Manager"]}},
    )
    assert [label for label, _old, _new in entry.change_rows()] == ["first name", "role"]
