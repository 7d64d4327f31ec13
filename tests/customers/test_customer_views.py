"""Creating, reading, editing and deleting customers, and recording what happens with them."""

import datetime
import decimal
import re
import urllib.parse

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from customers.models import Consent, Customer, Interaction, Order, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

MISSING = "0190a0a0-0000-7000-8000-000000000000"


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def new_customer(**overrides):
    data = {
        "family_name": "王",
        "given_name": "芳",
        "display_name": "",
        "phone": "139 1234 5678",
        "email": "Wang.Fang@Example.com",
        "source": "web_form",
        "status": "lead",
        "country": "CN",
        "tags": "new, 上海",
    }
    data.update(overrides)
    return data


def field_error_after(content, field_id, message):
    """True when `message` is shown as an error in the same field block as input `field_id`."""
    inside_block = r'(?:(?!<div class="field).)*'
    block = re.search(
        rf'<div class="field has-error[^"]*">{inside_block}id="{field_id}"{inside_block}',
        content,
        re.S,
    )
    return (
        block is not None and f'<p class="field-error" role="alert">{message}</p>' in block.group(0)
    )


# Create -----------------------------------------------------------------------------------


def test_staff_creates_a_customer(staff_client, staff):
    response = staff_client.post("/customers/new/", new_customer(owner=staff.pk))
    customer = Customer.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/"
    assert messages_of(response) == ["Customer 王芳 created."]
    assert customer.display_name == "王芳"
    assert customer.phone == "+8613912345678"
    assert customer.email == "wang.fang@example.com"
    assert customer.tags == ["new", "上海"]
    assert (customer.owner, customer.created_by, customer.updated_by) == (staff, staff, staff)
    assert customer.version == 1
    assert set(Tag.objects.values_list("name", flat=True)) == {"new", "上海"}


def test_new_customer_form_suggests_the_user_as_owner(staff_client, staff):
    response = staff_client.get("/customers/new/")
    assert response.status_code == 200
    assert response.context["form"]["owner"].value() == staff.pk


def test_invalid_new_customer_is_shown_again_with_errors_beside_the_fields(staff_client):
    response = staff_client.post(
        "/customers/new/", new_customer(phone="12345", email="not-an-email", status="")
    )
    assert response.status_code == 200
    assert Customer.objects.count() == 0
    content = response.content.decode()
    assert "Please correct the errors below." in content
    assert field_error_after(
        content, "id_phone", "Enter a valid mobile number, e.g. 138 0013 8000 or +86 138 0013 8000."
    )
    assert field_error_after(content, "id_email", "Enter a valid email address.")
    assert field_error_after(content, "id_status", "This field is required.")
    # What was typed is kept.
    assert 'value="12345"' in content


def test_errors_are_shown_in_chinese_to_a_user_who_chose_chinese(client, staff):
    staff.language = "zh-hans"
    staff.save()
    client.force_login(staff)
    response = client.post("/customers/new/", new_customer(email="not-an-email", status=""))
    assert response.status_code == 200
    assert response["Content-Language"] == "zh-hans"
    content = response.content.decode()
    assert field_error_after(content, "id_email", "输入一个有效的 Email 地址。")
    assert field_error_after(content, "id_status", "这个字段是必填项。")


def test_customer_with_the_email_of_another_is_not_created(staff_client, customer):
    response = staff_client.post("/customers/new/", new_customer(email="Zhang.Wei@example.com"))
    assert response.status_code == 200
    assert Customer.objects.count() == 1
    assert field_error_after(
        response.content.decode(), "id_email", "Another customer, 张伟, already has this email."
    )


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_new_customer_refuses_other_methods(staff_client, method):
    assert getattr(staff_client, method)("/customers/new/").status_code == 405


def test_anonymous_visitor_cannot_create_a_customer(client):
    response = client.post("/customers/new/", new_customer())
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/customers/new/"
    assert not Customer.objects.exists()


def test_deactivated_user_is_signed_out(client, outsider, customer):
    client.force_login(outsider)
    response = client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 302
    assert urllib.parse.urlsplit(response["Location"]).path == "/accounts/login/"


# Detail -----------------------------------------------------------------------------------


def test_detail_shows_profile_purchases_consents_and_timeline(staff_client, customer):
    t0 = timezone.now() - datetime.timedelta(days=3)
    Interaction.objects.create(
        customer=customer, kind="call", summary="Asked about tea", occurred_at=t0
    )
    Order.objects.create(
        customer=customer, external_id="SO-77", amount=decimal.Decimal("88"), ordered_at=t0
    )
    Consent.objects.create(customer=customer, purpose="sms", granted=True)
    response = staff_client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "张伟" in content and "138****8000" in content
    assert "Asked about tea" in content and "SO-77" in content
    assert response.context["summary"]["count"] == 1
    states = {s.purpose: s.state for s in response.context["consent_states"]}
    assert states["sms"] == "granted" and states["marketing_email"] == "never"


def test_detail_timeline_pages_with_show_older(staff_client, customer):
    t0 = timezone.now() - datetime.timedelta(days=30)
    for i in range(25):
        Interaction.objects.create(
            customer=customer,
            kind="call",
            summary=f"call #{i}",
            occurred_at=t0 + datetime.timedelta(hours=i),
        )
    first = staff_client.get(f"/customers/{customer.pk}/")
    assert len(first.context["entries"]) == 20
    cursor = first.context["more_cursor"]
    older = staff_client.get(
        f"/customers/{customer.pk}/",
        {"before": cursor},
        headers={"HX-Request": "true", "HX-Target": "timeline-more"},
    )
    content = older.content.decode()
    assert "<html" not in content
    assert [e.summary for e in older.context["entries"]] == [f"call #{i}" for i in range(4, -1, -1)]
    assert older.context["more_cursor"] is None


@pytest.mark.parametrize(
    "before",
    ["garbage", "2025-01-01T00:00:00|not-a-uuid", f"|{MISSING}", f"2025-13-45T99:00|{MISSING}"],
)
def test_malformed_timeline_cursor_is_a_400(staff_client, customer, before):
    response = staff_client.get(f"/customers/{customer.pk}/", {"before": before})
    assert response.status_code == 400
    assert "This page link is not valid." in response.content.decode()


def test_staff_cannot_open_customer_that_does_not_exist(staff_client):
    assert staff_client.get(f"/customers/{MISSING}/").status_code == 404


# Edit -------------------------------------------------------------------------------------


def edit_post(customer, **changes):
    data = {
        "display_name": customer.display_name,
        "family_name": customer.family_name,
        "given_name": customer.given_name,
        "email": customer.email,
        "phone": customer.phone,
        "company": customer.company,
        "source": customer.source,
        "status": customer.status,
        "country": customer.country,
        "tags": ", ".join(customer.tags),
        "version": customer.version,
    }
    data.update(changes)
    return data


def test_staff_edits_a_customer(staff_client, staff, customer):
    response = staff_client.post(
        f"/customers/{customer.pk}/edit/", edit_post(customer, status="inactive", owner=staff.pk)
    )
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/"
    assert messages_of(response) == ["Changes to 张伟 saved."]
    customer.refresh_from_db()
    assert (customer.status, customer.owner, customer.version) == ("inactive", staff, 2)
    assert customer.updated_by.username == "staff"


def test_staff_cannot_hand_a_customer_to_a_colleague(staff_client, manager, customer):
    response = staff_client.post(
        f"/customers/{customer.pk}/edit/", edit_post(customer, owner=manager.pk)
    )
    assert response.status_code == 200
    assert response.context["form"].errors["owner"]
    customer.refresh_from_db()
    assert customer.owner.username == "staff"


def test_manager_hands_a_customer_to_a_member_of_their_team(manager_client, manager, customer):
    response = manager_client.post(
        f"/customers/{customer.pk}/edit/", edit_post(customer, owner=manager.pk)
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.owner == manager


def test_edit_form_shows_the_current_values(staff_client, customer):
    response = staff_client.get(f"/customers/{customer.pk}/edit/")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'value="zhang.wei@example.com"' in content
    assert 'name="version" value="1"' in content


def test_invalid_edit_changes_nothing(staff_client, customer):
    response = staff_client.post(
        f"/customers/{customer.pk}/edit/", edit_post(customer, phone="000", company="Changed")
    )
    assert response.status_code == 200
    assert response.context["form"].errors["phone"]
    customer.refresh_from_db()
    assert (customer.phone, customer.company, customer.version) == (
        "+8613800138000",
        "上海华东贸易有限公司",
        1,
    )


def test_editing_a_customer_that_does_not_exist_is_not_found(staff_client):
    assert staff_client.get(f"/customers/{MISSING}/edit/").status_code == 404
    assert (
        staff_client.post(f"/customers/{MISSING}/edit/", {"display_name": "x"}).status_code == 404
    )


def test_edit_refuses_other_methods(staff_client, customer):
    assert staff_client.put(f"/customers/{customer.pk}/edit/").status_code == 405


def test_anonymous_visitor_cannot_edit(client, customer):
    response = client.post(f"/customers/{customer.pk}/edit/", edit_post(customer, company="Hacked"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    customer.refresh_from_db()
    assert customer.company == "上海华东贸易有限公司"


# Delete -----------------------------------------------------------------------------------


def test_delete_asks_for_confirmation_first(staff_client, customer):
    response = staff_client.get(f"/customers/{customer.pk}/delete/")
    assert response.status_code == 200
    assert "Delete 张伟?" in response.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_staff_deletes_a_customer_with_everything_recorded_about_them(
    staff_client, customer, make_customer
):
    other = make_customer("李娜")
    for who in (customer, other):
        Interaction.objects.create(customer=who, kind="visit", summary="visit")
        Order.objects.create(customer=who, external_id=f"{who.pk}", amount=1)
        Consent.objects.create(customer=who, purpose="phone", granted=False)
    response = staff_client.post(f"/customers/{customer.pk}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    assert messages_of(response) == ["Customer 张伟 deleted."]
    assert list(Customer.objects.all()) == [other]
    for model in (Interaction, Order, Consent):
        assert list(model.objects.values_list("customer_id", flat=True)) == [other.pk]


def test_deleting_a_customer_that_does_not_exist_is_not_found(staff_client):
    assert staff_client.post(f"/customers/{MISSING}/delete/").status_code == 404


def test_delete_refuses_other_methods(staff_client, customer):
    assert staff_client.delete(f"/customers/{customer.pk}/delete/").status_code == 405
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_anonymous_visitor_cannot_delete(client, customer):
    response = client.post(f"/customers/{customer.pk}/delete/")
    assert response.status_code == 302
    assert Customer.objects.filter(pk=customer.pk).exists()


# Interactions, orders and consents --------------------------------------------------------

RECORDS = {
    "interactions": (
        Interaction,
        {"kind": "call", "channel": "phone", "occurred_at": "2025-03-01T10:30", "summary": "询价"},
        {"kind": "call", "channel": "phone", "occurred_at": "2025-03-01T10:30", "summary": ""},
        "Interaction added.",
    ),
    "orders": (
        Order,
        {
            "external_id": "SO-1",
            "ordered_at": "2025-03-01T10:30",
            "amount": "",
            "currency": "cny",
            "channel": "store",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-MIN_NUM_FORMS": "0",
            "lines-MAX_NUM_FORMS": "100",
            "lines-0-product": "龙井",
            "lines-0-quantity": "2",
            "lines-0-unit_price": "50",
        },
        {
            "external_id": "SO-1",
            "ordered_at": "2025-03-01T10:30",
            "amount": "-5",
            "currency": "cny",
            "channel": "store",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
        },
        "Order SO-1 added.",
    ),
    "consents": (
        Consent,
        {
            "purpose": "sms",
            "granted": "true",
            "recorded_at": "2025-03-01T10:30",
            "source": "store",
            "wording": "同意接收短信",
        },
        {"purpose": "sms", "recorded_at": "2025-03-01T10:30", "source": "store"},
        "Consent recorded.",
    ),
}


@pytest.mark.parametrize("kind", list(RECORDS))
def test_staff_records_an_interaction_order_or_consent(staff_client, staff, customer, kind):
    model, valid, _invalid, message = RECORDS[kind]
    assert staff_client.get(f"/customers/{customer.pk}/{kind}/new/").status_code == 200
    response = staff_client.post(f"/customers/{customer.pk}/{kind}/new/", valid)
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/"
    assert messages_of(response) == [message]
    record = model.objects.get()
    assert record.customer == customer
    if model is Order:
        assert (record.amount, record.currency) == (decimal.Decimal("100.00"), "CNY")
    elif model is Interaction:
        assert record.created_by == staff
    else:
        assert (record.recorded_by, record.granted) == (staff, True)


@pytest.mark.parametrize("kind", list(RECORDS))
def test_invalid_record_is_shown_again_with_errors_and_nothing_saved(staff_client, customer, kind):
    model, _valid, invalid, _message = RECORDS[kind]
    response = staff_client.post(f"/customers/{customer.pk}/{kind}/new/", invalid)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert '<p class="field-error" role="alert">' in response.content.decode()
    assert model.objects.count() == 0


@pytest.mark.parametrize("kind", list(RECORDS))
def test_recording_for_a_customer_that_does_not_exist_is_not_found(staff_client, kind):
    model, valid, _invalid, _message = RECORDS[kind]
    assert staff_client.post(f"/customers/{MISSING}/{kind}/new/", valid).status_code == 404
    assert model.objects.count() == 0


@pytest.mark.parametrize("kind", list(RECORDS))
def test_recording_refuses_other_methods(staff_client, customer, kind):
    assert staff_client.put(f"/customers/{customer.pk}/{kind}/new/").status_code == 405


@pytest.mark.parametrize("kind", list(RECORDS))
def test_anonymous_visitor_cannot_record(client, customer, kind):
    model, valid, _invalid, _message = RECORDS[kind]
    response = client.post(f"/customers/{customer.pk}/{kind}/new/", valid)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert model.objects.count() == 0


def test_an_order_number_already_used_is_refused(staff_client, customer):
    Order.objects.create(customer=customer, external_id="SO-1", amount=1)
    response = staff_client.post(f"/customers/{customer.pk}/orders/new/", RECORDS["orders"][1])
    assert response.status_code == 200
    assert response.context["form"].errors["external_id"] == [
        "An order with this number already exists."
    ]
    assert Order.objects.count() == 1


def test_an_order_form_without_its_line_management_data_is_not_an_error_page(
    staff_client, customer
):
    data = {k: v for k, v in RECORDS["orders"][1].items() if not k.startswith("lines-")}
    data["amount"] = "10"
    response = staff_client.post(f"/customers/{customer.pk}/orders/new/", data)
    assert response.status_code == 200
    assert Order.objects.count() == 0


# Duplicate hint ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"email": "ZHANG.WEI@example.com"},
        {"phone": "138 0013 8000"},
        {"phone": "+86-138-0013-8000", "email": ""},
    ],
)
def test_duplicate_hint_shows_the_customer_with_that_email_or_phone(staff_client, customer, params):
    response = staff_client.get("/customers/duplicates/", params)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Already in CIMS with this email or mobile number:" in content
    assert f'href="/customers/{customer.pk}/"' in content


def test_duplicate_hint_leaves_out_the_customer_being_edited(staff_client, customer):
    response = staff_client.get(
        "/customers/duplicates/", {"email": customer.email, "exclude": str(customer.pk)}
    )
    assert response.content.decode().strip() == ""


@pytest.mark.parametrize("params", [{}, {"email": "nobody@example.com"}, {"phone": "123"}])
def test_duplicate_hint_is_empty_without_a_match(staff_client, customer, params):
    response = staff_client.get("/customers/duplicates/", params)
    assert response.status_code == 200
    assert response.content.decode().strip() == ""


def test_an_edit_without_sensitive_access_records_only_what_changed(client, staff, customer):
    from django.contrib.auth.models import Permission

    from accounts.audit import Action, AuditEntry

    # Staff whose role lacks "view sensitive data": the form leaves those fields out.
    for group in staff.groups.all():
        group.permissions.remove(Permission.objects.get(codename="view_sensitive_data"))
    client.force_login(staff)
    data = edit_post(
        customer,
        company="新公司",
        owner=staff.pk,
        team=customer.team_id,
        province=customer.province,
        city=customer.city,
    )
    response = client.post(f"/customers/{customer.pk}/edit/", data)
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action=Action.CUSTOMER_UPDATE)
    assert set(entry.data["changes"]) == {"company"}
    customer.refresh_from_db()
    assert customer.phone == "+8613800138000"
