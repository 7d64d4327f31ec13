import datetime
import decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.models import Consent, Customer, CustomField, Interaction, Order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

T0 = timezone.make_aware(datetime.datetime(2025, 3, 1, 9, 0))


def _refused(**fields):
    """True when the database refuses a customer with these fields."""
    try:
        with transaction.atomic():
            Customer.objects.create(**{"display_name": "客户", **fields})
    except IntegrityError:
        return True
    return False


# Constraints ------------------------------------------------------------------------------


def test_two_customers_cannot_share_an_email(customer):
    assert _refused(email=customer.email)


def test_two_customers_cannot_share_a_phone(customer):
    assert _refused(phone=customer.phone)


def test_many_customers_may_have_no_email_and_no_phone(make_customer):
    make_customer("甲", email="", phone="")
    make_customer("乙", email="", phone="")
    assert Customer.objects.filter(email__isnull=True, phone__isnull=True).count() == 2


def test_two_customers_cannot_share_an_email_in_another_case(customer):
    assert _refused(email="Zhang.Wei@Example.COM")


def test_email_is_saved_in_lower_case(make_customer):
    # The database cannot check a ciphertext's case, so the model brings it to lower case.
    customer = make_customer(email=" Zhang.Wei@Example.com ")
    customer.refresh_from_db()
    assert customer.email == "zhang.wei@example.com"


@pytest.mark.parametrize("phone", ["13800138000", "+86 138 0013 8000", "138-0013-8000"])
def test_phone_is_saved_in_e164_form(make_customer, phone):
    customer = make_customer(phone=phone)
    customer.refresh_from_db()
    assert customer.phone == "+8613800138000"


@pytest.mark.parametrize("phone", ["+0861380013800", "+86", "12345"])
def test_a_phone_that_is_not_a_number_is_refused(db, phone):
    with pytest.raises(ValidationError) as error:
        Customer.objects.create(display_name="客户", phone=phone)
    assert list(error.value.message_dict) == ["phone"]
    assert not Customer.objects.exists()


def test_database_accepts_a_phone_in_e164_form(db):
    assert not _refused(phone="+8613800138000")


def test_database_refuses_an_unknown_status(db):
    assert _refused(status="deleted")


def test_database_refuses_an_unknown_source(db):
    assert _refused(source="carrier_pigeon")


def _order_refused(customer, **fields):
    values = {"external_id": "A-1", "amount": decimal.Decimal("1.00"), **fields}
    try:
        with transaction.atomic():
            Order.objects.create(customer=customer, **values)
    except IntegrityError:
        return True
    return False


def test_database_refuses_an_order_with_a_negative_amount(customer):
    assert _order_refused(customer, amount=decimal.Decimal("-0.01"))
    assert not _order_refused(customer, amount=decimal.Decimal("0"))


@pytest.mark.parametrize("currency", ["cny", "RM", "R1B", "€€€"])
def test_database_refuses_a_currency_that_is_not_three_capital_letters(customer, currency):
    assert _order_refused(customer, currency=currency)


def test_order_number_is_unique_within_its_source_system(customer):
    Order.objects.create(customer=customer, source_system="tmall", external_id="8001", amount=1)
    assert _order_refused(customer, source_system="tmall", external_id="8001")
    assert not _order_refused(customer, source_system="jd", external_id="8001")


# Search columns ---------------------------------------------------------------------------


def test_saving_a_customer_fills_its_search_columns(customer):
    customer.refresh_from_db()
    assert customer.name_pinyin == "zhang wei"
    assert {"张", "伟", "张伟", "zhang", "wei", "zw"} <= set(customer.search_keys)
    assert "zhangwei" in customer.search_text
    # The email is encrypted, and found through its blind index, never in clear text.
    assert "@" not in customer.search_text


def test_search_columns_follow_a_change_of_name(customer):
    customer.display_name, customer.family_name, customer.given_name = "李娜", "李", "娜"
    customer.email = "li.na@example.com"
    customer.save()
    customer.refresh_from_db()
    assert customer.name_pinyin == "li na"
    assert "李娜" in customer.search_keys
    assert "张" not in customer.search_keys
    assert "lina" in customer.search_text
    assert "zhang" not in customer.search_text
    assert "li.na@example.com" not in customer.search_text


# Names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "given", "name"),
    [
        ("张", "伟", "张伟"),
        ("欧阳", "娜娜", "欧阳娜娜"),
        ("Smith", "John", "John Smith"),
        ("", "伟", "伟"),
        ("Smith", "", "Smith"),
        ("", "", ""),
    ],
)
def test_name_from_parts_orders_family_and_given_name_by_script(family, given, name):
    assert Customer.name_from_parts(family, given) == name


def test_clean_makes_the_display_name_from_the_parts_when_it_is_empty(db):
    customer = Customer(display_name=" ", family_name="王", given_name="芳")
    customer.clean()
    assert customer.display_name == "王芳"


# Orders and consents ----------------------------------------------------------------------


def test_order_summary_counts_dates_and_totals_per_currency(customer):
    for number, days, amount, currency in [
        ("1", 0, "100.50", "CNY"),
        ("2", 10, "200.00", "CNY"),
        ("3", 5, "30.00", "USD"),
    ]:
        Order.objects.create(
            customer=customer,
            external_id=number,
            ordered_at=T0 + datetime.timedelta(days=days),
            amount=decimal.Decimal(amount),
            currency=currency,
        )
    summary = customer.order_summary()
    assert summary["count"] == 3
    assert summary["first"] == T0
    assert summary["last"] == T0 + datetime.timedelta(days=10)
    assert [(t["currency"], t["total"]) for t in summary["totals"]] == [
        ("CNY", decimal.Decimal("300.50")),
        ("USD", decimal.Decimal("30.00")),
    ]


def test_order_summary_of_a_customer_without_orders_is_empty(customer):
    summary = customer.order_summary()
    assert summary == {"count": 0, "first": None, "last": None, "totals": []}


def test_order_total_of_lines_multiplies_and_rounds_to_cents():
    lines = [
        {"product": "茶", "quantity": 3, "unit_price": "19.99"},
        {"product": "杯", "quantity": 0.5, "unit_price": "0.015"},
    ]
    assert Order.total_of(lines) == decimal.Decimal("59.98")


def test_current_consents_keep_only_the_latest_record_per_purpose(customer):
    Purpose = Consent.Purpose
    # Recorded out of order: the withdrawal is later in time but written first.
    Consent.objects.create(
        customer=customer,
        purpose=Purpose.MARKETING_EMAIL,
        granted=False,
        recorded_at=T0 + datetime.timedelta(days=2),
    )
    Consent.objects.create(
        customer=customer, purpose=Purpose.MARKETING_EMAIL, granted=True, recorded_at=T0
    )
    Consent.objects.create(customer=customer, purpose=Purpose.SMS, granted=False, recorded_at=T0)
    Consent.objects.create(
        customer=customer,
        purpose=Purpose.SMS,
        granted=True,
        recorded_at=T0 + datetime.timedelta(days=1),
    )
    current = {c.purpose: c.granted for c in customer.current_consents()}
    assert current == {Purpose.MARKETING_EMAIL: False, Purpose.SMS: True}


# Timeline ---------------------------------------------------------------------------------


def _timeline_fixture(customer):
    """Calls at even hours, orders at odd hours, and an order and a visit at the same time."""
    entries = []
    for hour in range(0, 10, 2):
        entries.append(
            Interaction.objects.create(
                customer=customer,
                kind=Interaction.Kind.CALL,
                summary=f"call {hour}",
                occurred_at=T0 + datetime.timedelta(hours=hour),
            )
        )
    for hour in range(1, 10, 2):
        entries.append(
            Order.objects.create(
                customer=customer,
                external_id=f"O{hour}",
                amount=1,
                ordered_at=T0 + datetime.timedelta(hours=hour),
            )
        )
    tie = T0 + datetime.timedelta(hours=20)
    entries.append(
        Order.objects.create(customer=customer, external_id="tie", amount=1, ordered_at=tie)
    )
    entries.append(
        Interaction.objects.create(customer=customer, kind="visit", summary="tie", occurred_at=tie)
    )
    return entries


def test_timeline_interleaves_interactions_and_orders_newest_first(customer):
    entries = _timeline_fixture(customer)
    page, more = customer.timeline(limit=100)
    assert not more
    assert [e.pk for e in page] == [
        e.pk for e in sorted(entries, key=lambda e: (e.occurred, e.pk), reverse=True)
    ]
    kinds = [type(e).__name__ for e in page[2:6]]
    assert kinds == ["Order", "Interaction", "Order", "Interaction"]


def test_timeline_pages_with_a_before_cursor_without_gaps_or_repeats(customer):
    entries = _timeline_fixture(customer)
    seen, before = [], None
    for _page in range(10):
        page, more = customer.timeline(before=before, limit=3)
        assert len(page) == 3 or not more
        seen += page
        if not more:
            break
        before = (page[-1].occurred, page[-1].pk)
    expected = sorted(entries, key=lambda e: (e.occurred, e.pk), reverse=True)
    assert [e.pk for e in seen] == [e.pk for e in expected]


def test_timeline_of_a_quiet_customer_is_empty(customer):
    assert customer.timeline() == ([], False)


# Custom attributes ------------------------------------------------------------------------


def _attribute_errors(attributes):
    customer = Customer(display_name="客户", attributes=attributes)
    try:
        customer.validate_attributes()
    except ValidationError as error:
        return error.message_dict["attributes"]
    return []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hobby", "书法"),
        ("score", 3),
        ("score", 2.5),
        ("joined", "2024-02-29"),
        ("level", "gold"),
        ("interests", ["golf", "tea"]),
        ("interests", []),
        ("newsletter", False),
    ],
)
def test_a_valid_value_of_each_attribute_type_is_accepted(custom_fields, key, value):
    assert _attribute_errors({key: value}) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hobby", 5),
        ("hobby", "x" * 501),
        ("score", "3"),
        ("score", True),
        ("joined", "2024-02-30"),
        ("joined", 20240101),
        ("level", "bronze"),
        ("interests", "golf"),
        ("interests", ["golf", "chess"]),
        ("newsletter", "yes"),
        ("newsletter", 1),
    ],
)
def test_an_invalid_value_of_each_attribute_type_is_refused(custom_fields, key, value):
    errors = _attribute_errors({key: value})
    assert len(errors) == 1
    assert "is not a valid value for" in errors[0]


def test_an_unknown_attribute_is_refused(custom_fields):
    assert _attribute_errors({"shoe_size": 42}) == ["Unknown attribute shoe_size."]


@pytest.mark.parametrize("missing", [None, "", []])
def test_a_required_attribute_must_be_set(custom_fields, missing):
    CustomField.objects.filter(key="level").update(required=True)
    attributes = {} if missing is None else {"level": missing}
    errors = _attribute_errors(attributes)
    assert "Level is required." in errors


def test_a_retired_attribute_keeps_its_value_and_is_no_longer_required(custom_fields):
    CustomField.objects.filter(key="level").update(active=False, required=True)
    assert _attribute_errors({"level": "a value from before the field was retired"}) == []
    assert _attribute_errors({}) == []


def test_full_clean_reports_attribute_errors_under_attributes(custom_fields):
    customer = Customer(display_name="客户", attributes={"score": "many"})
    with pytest.raises(ValidationError) as raised:
        customer.full_clean(validate_unique=False, validate_constraints=False)
    assert list(raised.value.message_dict) == ["attributes"]
    customer.full_clean(exclude=["attributes"], validate_unique=False, validate_constraints=False)


def test_choice_field_definition_needs_options(db):
    field = CustomField(key="tier", label="Tier", type=CustomField.Type.CHOICE, choices=[])
    with pytest.raises(ValidationError):
        field.clean()
    field = CustomField(key="note", label="Note", type=CustomField.Type.TEXT, choices=["a"])
    with pytest.raises(ValidationError):
        field.clean()


def test_attribute_values_are_stored_as_plain_json(custom_fields):
    fields = {f.key: f for f in custom_fields.values()}
    assert fields["score"].to_json(decimal.Decimal("3.000")) == 3
    assert fields["score"].to_json(decimal.Decimal("2.5")) == 2.5
    assert fields["joined"].to_json(datetime.date(2024, 2, 29)) == "2024-02-29"
    assert fields["interests"].to_json(["wine", "golf"]) == ["golf", "wine"]
    assert fields["newsletter"].to_json(False) is False
    assert fields["hobby"].to_json("") is None
