import datetime
import decimal

import pytest
from django.utils import timezone, translation

from customers.forms import ConsentForm, CustomerForm, OrderForm, OrderLineFormSet
from customers.models import Customer, CustomField

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def customer_data(**overrides):
    data = {"display_name": "王芳", "source": "store", "status": "lead", "country": "CN"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def customer_form(staff, instance=None, **overrides):
    if instance is not None:
        # An edit form carries the version it was opened at.
        overrides.setdefault("version", instance.version)
    return CustomerForm(customer_data(**overrides), instance=instance, user=staff)


# Normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    ["138 0013 8000", "+86 13800138000", "13800138000", "+86-138-0013-8000", "(+86) 138.0013.8000"],
)
def test_phone_in_any_common_format_is_stored_in_e164(staff, typed):
    form = customer_form(staff, phone=typed)
    assert form.is_valid(), form.errors
    assert form.save().phone == "+8613800138000"


def test_foreign_phone_with_country_code_is_kept_in_its_country(staff):
    form = customer_form(staff, phone="+1 (202) 555-0143")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == "+12025550143"


@pytest.mark.parametrize("typed", ["12345", "138 0013 800", "+86 999", "not a number"])
def test_invalid_phone_is_an_error_beside_the_phone_field(staff, typed):
    form = customer_form(staff, phone=typed)
    assert not form.is_valid()
    assert list(form.errors) == ["phone"]
    assert form.errors["phone"] == [
        "Enter a valid mobile number, e.g. 138 0013 8000 or +86 138 0013 8000."
    ]


def test_email_is_stored_in_lower_case(staff):
    form = customer_form(staff, email="  Wang.Fang@Example.COM ")
    assert form.is_valid(), form.errors
    assert form.save().email == "wang.fang@example.com"


def test_empty_email_and_phone_are_allowed(staff):
    form = customer_form(staff, email="", phone="")
    assert form.is_valid(), form.errors
    customer = form.save()
    assert (customer.email, customer.phone) == ("", "")


# Errors in both languages -----------------------------------------------------------------


def test_invalid_email_and_missing_status_are_errors_beside_their_fields_in_english(staff):
    with translation.override("en"):
        form = customer_form(staff, email="not-an-email", status="")
        assert not form.is_valid()
        assert form.errors["email"] == ["Enter a valid email address."]
        assert form.errors["status"] == ["This field is required."]


def test_invalid_email_and_missing_status_are_errors_beside_their_fields_in_chinese(staff):
    with translation.override("zh-hans"):
        form = customer_form(staff, email="not-an-email", status="")
        assert not form.is_valid()
        assert form.errors["email"] == ["输入一个有效的 Email 地址。"]
        assert form.errors["status"] == ["这个字段是必填项。"]


def test_birthday_in_the_future_is_refused(staff):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    form = customer_form(staff, birthday=tomorrow.isoformat())
    assert not form.is_valid()
    assert list(form.errors) == ["birthday"]


# Duplicates -------------------------------------------------------------------------------


def test_email_of_another_customer_is_refused_with_their_name(staff, customer):
    form = customer_form(staff, email="ZHANG.WEI@example.com")
    assert not form.is_valid()
    assert form.errors["email"] == ["Another customer, 张伟, already has this email."]
    assert form.has_error("email", code="duplicate")


def test_phone_of_another_customer_in_another_format_is_refused(staff, customer):
    form = customer_form(staff, phone="138-0013-8000")
    assert not form.is_valid()
    assert form.errors["phone"] == ["Another customer, 张伟, already has this mobile number."]


def test_customer_keeps_its_own_email_and_phone_when_edited(staff, customer):
    form = customer_form(
        staff, instance=customer, display_name="张伟", email=customer.email, phone="13800138000"
    )
    assert form.is_valid(), form.errors


# Names ------------------------------------------------------------------------------------


def test_display_name_is_made_from_chinese_family_and_given_name(staff):
    form = customer_form(staff, display_name="", family_name="欧阳", given_name="娜娜")
    assert form.is_valid(), form.errors
    assert form.save().display_name == "欧阳娜娜"


def test_display_name_is_made_from_western_given_and_family_name(staff):
    form = customer_form(staff, display_name="", family_name="Smith", given_name="John")
    assert form.is_valid(), form.errors
    assert form.save().display_name == "John Smith"


def test_a_typed_display_name_wins_over_the_parts(staff):
    form = customer_form(staff, display_name="小王", family_name="王", given_name="芳")
    assert form.is_valid(), form.errors
    assert form.save().display_name == "小王"


def test_a_customer_needs_some_name(staff):
    form = customer_form(staff, display_name="", family_name="", given_name="")
    assert not form.is_valid()
    assert form.errors["display_name"] == ["Enter a name, or a family and a given name."]


# Tags -------------------------------------------------------------------------------------


def test_tags_are_split_on_either_comma_and_deduplicated_in_order(staff):
    form = customer_form(staff, tags="vip， 上海,vip , new")
    assert form.is_valid(), form.errors
    assert form.save().tags == ["vip", "上海", "new"]


def test_too_many_tags_are_refused(staff):
    form = customer_form(staff, tags=",".join(f"t{i}" for i in range(21)))
    assert not form.is_valid()
    assert list(form.errors) == ["tags"]


# Custom attributes ------------------------------------------------------------------------


ATTRIBUTE_INPUT = {
    "attr_hobby": "书法",
    "attr_score": "42.50",
    "attr_joined": "2024-02-29",
    "attr_level": "gold",
    "attr_interests": ["wine", "golf"],
    "attr_newsletter": "false",
}


def test_form_has_one_field_per_active_custom_attribute(staff, custom_fields):
    CustomField.objects.create(key="retired", label="Retired", active=False)
    form = CustomerForm(user=staff)
    names = [bound.name for bound in form.attribute_fields()]
    assert names == [
        "attr_hobby",
        "attr_score",
        "attr_joined",
        "attr_level",
        "attr_interests",
        "attr_newsletter",
    ]


def test_custom_attributes_of_every_type_are_saved_as_json(staff, custom_fields):
    form = customer_form(staff, **ATTRIBUTE_INPUT)
    assert form.is_valid(), form.errors
    customer = form.save()
    customer.refresh_from_db()
    assert customer.attributes == {
        "hobby": "书法",
        "score": 42.5,
        "joined": "2024-02-29",
        "level": "gold",
        "interests": ["golf", "wine"],
        "newsletter": False,
    }


def test_stored_attributes_are_the_initial_values_of_the_edit_form(staff, custom_fields, customer):
    customer.attributes = {"level": "silver", "newsletter": True}
    customer.save()
    form = CustomerForm(instance=customer, user=staff)
    assert form["attr_level"].value() == "silver"
    assert form["attr_newsletter"].value() is True


def test_clearing_an_attribute_removes_it(staff, custom_fields, customer):
    customer.attributes = {"hobby": "golf", "level": "gold"}
    customer.save()
    form = customer_form(
        staff,
        instance=customer,
        display_name="张伟",
        email=customer.email,
        phone=customer.phone,
        attr_level="",
        attr_hobby="golf",
    )
    assert form.is_valid(), form.errors
    assert form.save().attributes == {"hobby": "golf"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attr_score", "many"),
        ("attr_joined", "2024-02-30"),
        ("attr_level", "bronze"),
        ("attr_interests", ["chess"]),
        ("attr_newsletter", "maybe"),
        ("attr_hobby", "x" * 501),
    ],
)
def test_invalid_attribute_value_is_an_error_beside_its_field(staff, custom_fields, field, value):
    form = customer_form(staff, **{field: value})
    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_missing_required_attribute_is_an_error_beside_its_field(staff, custom_fields):
    CustomField.objects.filter(key="level").update(required=True)
    form = customer_form(staff)
    assert not form.is_valid()
    assert form.errors == {"attr_level": ["This field is required."]}


def test_required_yes_no_attribute_accepts_no(staff, custom_fields):
    CustomField.objects.filter(key="newsletter").update(required=True)
    form = customer_form(staff, attr_newsletter="false")
    assert form.is_valid(), form.errors
    assert form.save().attributes == {"newsletter": False}


def test_customer_with_a_value_of_a_retired_attribute_can_still_be_edited(
    staff, custom_fields, customer
):
    customer.attributes = {"hobby": "golf"}
    customer.save()
    CustomField.objects.filter(key="hobby").update(active=False)
    form = customer_form(
        staff,
        instance=customer,
        display_name="张伟 (VIP)",
        email=customer.email,
        phone=customer.phone,
    )
    assert form.is_valid(), form.errors
    assert form.save().attributes == {"hobby": "golf"}


# Orders -----------------------------------------------------------------------------------


def order_forms(customer, lines=(), **overrides):
    data = {
        "external_id": "SO-1",
        "ordered_at": "2025-03-01T10:00",
        "amount": "",
        "currency": "cny",
        "channel": "store",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "100",
        **overrides,
    }
    for i, (product, quantity, price) in enumerate(lines):
        data |= {
            f"lines-{i}-product": product,
            f"lines-{i}-quantity": quantity,
            f"lines-{i}-unit_price": price,
        }
    formset = OrderLineFormSet(data, prefix="lines")
    form = OrderForm(data, lines=formset)
    form.instance.customer = customer
    return form, formset


def test_order_amount_is_the_total_of_its_lines(customer):
    form, lines = order_forms(customer, lines=[("龙井茶", "2", "88.50"), ("茶杯", "0.5", "10")])
    assert lines.is_valid() and form.is_valid(), (form.errors, lines.errors)
    order = form.save()
    order.refresh_from_db()
    assert order.amount == decimal.Decimal("182.00")
    assert order.currency == "CNY"
    assert [line["product"] for line in order.lines] == ["龙井茶", "茶杯"]
    assert order.lines[0] == {"product": "龙井茶", "quantity": 2.0, "unit_price": "88.50"}


def test_an_order_amount_that_is_typed_wins_over_the_lines(customer):
    form, lines = order_forms(customer, lines=[("茶", "1", "10")], amount="8.00")
    assert lines.is_valid() and form.is_valid()
    assert form.save().amount == decimal.Decimal("8.00")


def test_an_order_needs_an_amount_or_lines(customer):
    form, lines = order_forms(customer)
    assert lines.is_valid()
    assert not form.is_valid()
    assert form.errors["amount"] == ["Enter the amount, or at least one order line."]


@pytest.mark.parametrize("currency", ["US", "U$D", "人民币", "USDT"])
def test_an_order_currency_must_be_a_three_letter_code(customer, currency):
    form, _lines = order_forms(customer, amount="1", currency=currency)
    assert not form.is_valid()
    assert list(form.errors) == ["currency"]


def test_an_order_amount_cannot_be_negative(customer):
    form, _lines = order_forms(customer, amount="-1")
    assert not form.is_valid()
    assert list(form.errors) == ["amount"]


def test_an_order_line_needs_a_valid_quantity_and_price(customer):
    form, lines = order_forms(customer, lines=[("茶", "-1", "abc")])
    assert not lines.is_valid()
    assert set(lines.errors[0]) == {"quantity", "unit_price"}


# Consents ---------------------------------------------------------------------------------


def test_consent_form_records_a_withdrawal(customer):
    form = ConsentForm(
        {
            "purpose": "marketing_email",
            "granted": "false",
            "recorded_at": "2025-03-01T10:00",
            "source": "web_form",
            "wording": "I agree to receive offers.",
            "wording_version": "v2",
        }
    )
    assert form.is_valid(), form.errors
    consent = form.save(commit=False)
    consent.customer = customer
    consent.save()
    consent.refresh_from_db()
    assert consent.granted is False
    assert consent.purpose == "marketing_email"


def test_consent_form_needs_a_purpose_and_a_decision(customer):
    form = ConsentForm(
        {"purpose": "telepathy", "recorded_at": "2025-03-01T10:00", "source": "other"}
    )
    assert not form.is_valid()
    assert set(form.errors) == {"purpose", "granted"}
    assert Customer.objects.count() == 1
