"""Malformed, hostile or oversized input is refused with a 4xx, never answered with a 500."""

import base64
import json

import pytest
from django.test import Client

from customers.models import Consent, Customer, Interaction, Order, SavedView

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

MISSING = "0190a0a0-0000-7000-8000-000000000000"


@pytest.fixture
def client(staff, customer, custom_fields):
    # A server error must reach the test as a response, as it would reach a browser.
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    return client


def cursor(*values):
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


LIST_QUERIES = [
    "q=" + "张" * 5000,
    "q=%00",
    "q=%ED%A0%80",  # a lone surrogate, not valid UTF-8
    "q=%E2%80%AE%F0%9F%98%80%CC%81%CC%81%CC%81",
    "q=%FF%FE",
    "q=+86+",
    "q=@",
    "q=%25_%5C",
    "q=" + "1" * 60,
    "size=-25",
    "size=%C2%B2",  # a superscript two: str.isdigit() but not int()
    "size=1e3",
    "size=" + "9" * 5000,
    "page=-5",
    "page=%C2%B2",
    "page=" + "9" * 5000,
    "sort=password",
    "sort=name&sort=-name&sort=",
    "sort=%00",
    "created_after=0001-01-01",
    "created_before=9999-12-31",
    "created_after=2025-02-30",
    "created_after=" + "2" * 300,
    "status=%00",
    "status=lead&status=lead&status=bogus",
    "owner=" + "9" * 30,
    "owner=-1",
    "team=" + "9" * 30,
    "has_orders=perhaps",
    "tags=" + "x," * 400,
    "tags=%00",
    "province=%00",
    "attr_score_min=1e999999",
    "attr_score_min=NaN",
    "attr_score_max=-Infinity",
    "attr_score_min=" + "9" * 40,
    "attr_joined_min=0000-00-00",
    "attr_level=%00",
    "attr_newsletter=%00",
    "after=" + cursor("\u0000", MISSING),
    "sort=name&after=" + cursor("\u0000", MISSING),
    "sort=name&before=" + cursor("zhang", "not-a-uuid"),
    "after=" + cursor("0001-01-01T00:00:00+14:00", MISSING),
    "after=" + cursor("9999-12-31T23:59:59-14:00", MISSING),
    "after=" + cursor(1, 2),
    "after=" + cursor(None, None),
    "after=" + base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    "after=" + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "after=x&before=y",
    "after=" + "A" * 10000,
]


@pytest.mark.parametrize("query", LIST_QUERIES)
def test_customer_list_never_fails_on_a_malformed_query(client, query):
    response = client.get(f"/customers/?{query}")
    assert response.status_code in (200, 400), response.content[:300]


@pytest.mark.parametrize(
    "path",
    [
        "/customers/not-a-uuid/",
        "/customers/0190a0a0-0000-7000-8000-00000000000/",
        "/customers/0190a0a0-0000-7000-8000-000000000000Z/edit/",
        "/customers/%00/",
        "/customers/../../etc/passwd",
        "/customers/bulk/123/",
        "/customers/views/not-a-uuid/rename/",
        f"/customers/{MISSING}/",
        f"/customers/{MISSING}/orders/new/",
    ],
)
def test_malformed_or_unknown_ids_in_addresses_are_not_found(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "before",
    [
        "0001-01-01T00:00:00+14:00|" + MISSING,
        "9999-12-31T23:59:59-14:00|" + MISSING,
        "2025-01-01T00:00:00|" + MISSING + "|extra",
        "%00|%00",
        "2025-01-01T00:00:00+99:00|" + MISSING,
        "x" * 10000,
    ],
)
def test_customer_detail_never_fails_on_a_malformed_timeline_cursor(client, customer, before):
    response = client.get(f"/customers/{customer.pk}/", {"before": before})
    assert response.status_code in (200, 400), response.content[:300]


@pytest.mark.parametrize(
    "params",
    [
        {"email": "\x00"},
        {"email": "a" * 10000},
        {"phone": "\x00"},
        {"phone": "9" * 10000},
        {"exclude": "\x00"},
        {"email": "zhang.wei@example.com", "exclude": "garbage"},
    ],
)
def test_duplicate_hint_never_fails(client, params):
    assert client.get("/customers/duplicates/", params).status_code in (200, 400)


def test_nul_characters_in_a_new_customer_are_form_errors(client):
    response = client.post(
        "/customers/new/",
        {"display_name": "王\x00芳", "notes": "\x00", "source": "store", "status": "lead"},
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"display_name", "notes"}
    assert Customer.objects.count() == 1


def test_saving_a_view_with_a_nul_character_in_its_query_is_not_a_server_error(client):
    response = client.post("/customers/views/new/", {"name": "odd", "query": "q=\x00"})
    assert response.status_code in (302, 400)
    assert all("\x00" not in v.query for v in SavedView.objects.all())


def test_bulk_action_with_a_nul_character_in_its_query_is_refused(
    manager, customer, verified_login
):
    # Bulk changes are for managers.
    client = verified_login(Client(raise_request_exception=False), manager)
    response = client.post(
        "/customers/bulk/",
        {"action": "delete", "scope": "all", "query": "q=\x00", "confirmed": "True"},
    )
    assert response.status_code == 400
    assert Customer.objects.count() == 1


RECORD_POSTS = {
    "interactions": ("occurred_at", {"kind": "call", "channel": "phone", "summary": "odd"}),
    "consents": (
        "recorded_at",
        {"purpose": "sms", "granted": "true", "source": "store", "wording": "同意接收短信"},
    ),
    "orders": (
        "ordered_at",
        {
            "external_id": "X",
            "amount": "1",
            "currency": "CNY",
            "channel": "store",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
        },
    ),
}


@pytest.mark.parametrize("kind", list(RECORD_POSTS))
@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "9999-12-31T23:59", "2025-02-30T10:00"])
def test_far_off_or_impossible_record_times_are_form_errors(client, customer, kind, moment):
    field, data = RECORD_POSTS[kind]
    response = client.post(f"/customers/{customer.pk}/{kind}/new/", {**data, field: moment})
    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert (Interaction.objects.count(), Consent.objects.count(), Order.objects.count()) == (
        0,
        0,
        0,
    )
    assert client.get(f"/customers/{customer.pk}/").status_code == 200


@pytest.mark.parametrize(
    "amount", ["NaN", "Infinity", "-Infinity", "1e999", "1" * 20, "0.001", "-0.01", "１２"]
)
def test_odd_order_amounts_are_form_errors_or_saved_sensibly(client, customer, amount):
    response = client.post(
        f"/customers/{customer.pk}/orders/new/",
        {
            "external_id": "X",
            "ordered_at": "2025-03-01T10:00",
            "amount": amount,
            "currency": "CNY",
            "channel": "store",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert Order.objects.count() == 0
    else:
        assert Order.objects.get().amount >= 0


@pytest.mark.parametrize("total", ["abc", "", "1000000", "101"])
def test_tampered_order_line_counts_are_form_errors(client, customer, total):
    response = client.post(
        f"/customers/{customer.pk}/orders/new/",
        {
            "external_id": "X",
            "ordered_at": "2025-03-01T10:00",
            "amount": "1",
            "currency": "CNY",
            "channel": "store",
            "lines-TOTAL_FORMS": total,
            "lines-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert Order.objects.count() == 0


def test_a_negative_order_line_count_is_read_as_no_lines(client, customer):
    client.post(
        f"/customers/{customer.pk}/orders/new/",
        {
            "external_id": "X",
            "ordered_at": "2025-03-01T10:00",
            "amount": "1",
            "currency": "CNY",
            "channel": "store",
            "lines-TOTAL_FORMS": "-1",
            "lines-INITIAL_FORMS": "0",
            "lines-0-product": "ghost",
            "lines-0-quantity": "1",
            "lines-0-unit_price": "1",
        },
    )
    assert list(Order.objects.values_list("amount", "lines")) == [(1, [])]


def test_oversized_post_is_a_400(client):
    response = client.post(
        "/customers/new/",
        {"display_name": "大", "notes": "x" * 3_000_000, "source": "store", "status": "lead"},
    )
    assert response.status_code == 400
    assert Customer.objects.count() == 1


def test_post_with_too_many_fields_is_a_400(client):
    data = {f"field{i}": "x" for i in range(2500)}
    response = client.post("/customers/new/", data)
    assert response.status_code == 400


def test_interaction_with_an_oversized_summary_is_a_form_error(client, customer):
    response = client.post(
        f"/customers/{customer.pk}/interactions/new/",
        {
            "kind": "call",
            "channel": "phone",
            "occurred_at": "2025-03-01T10:00",
            "summary": "话" * 501,
        },
    )
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["summary"]
    assert Interaction.objects.count() == 0


def test_consent_with_an_unknown_purpose_is_a_form_error(client, customer):
    response = client.post(
        f"/customers/{customer.pk}/consents/new/",
        {
            "purpose": "mind_reading",
            "granted": "true",
            "recorded_at": "2025-03-01T10:00",
            "source": "store",
        },
    )
    assert response.status_code == 200
    assert Consent.objects.count() == 0


@pytest.mark.parametrize(
    "next_url", ["\x00", "/\x00", "/customers/\r\nSet-Cookie: a=b", "http://[::1"]
)
def test_language_switch_never_fails_on_a_strange_next_address(client, next_url):
    response = client.post("/accounts/language/", {"language": "en", "next": next_url})
    assert response.status_code in (302, 400)
    assert "\n" not in response.get("Location", "")
