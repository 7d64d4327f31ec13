"""Consents: their current state kept on the customer, staff granting and withdrawing them,
the public withdrawal page and one-click unsubscribe, and lists and exports that respect them."""

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.audit import Action, AuditEntry
from customers import consents, merging
from customers.models import Consent, Customer

pytestmark = pytest.mark.django_db

EMAIL, SMS = "marketing_email", "sms"


def purposes_of(customer):
    return Customer.objects.values_list("consented_purposes", flat=True).get(pk=customer.pk)


def grant(customer, purpose=EMAIL, **extra):
    return consents.record_consent(
        customer=customer, purpose=purpose, granted=True, source="store", wording="是", **extra
    )


def withdraw(customer, purpose=EMAIL, **extra):
    return consents.record_consent(
        customer=customer, purpose=purpose, granted=False, source="store", **extra
    )


# The current state, kept by the database ---------------------------------------------------


def test_consented_purposes_follow_grants_and_withdrawals(customer):
    assert purposes_of(customer) == []
    grant(customer, EMAIL)
    grant(customer, SMS)
    assert purposes_of(customer) == [EMAIL, SMS]
    withdraw(customer, EMAIL)
    assert purposes_of(customer) == [SMS]


def test_latest_record_wins_even_when_recorded_out_of_order(customer):
    now = timezone.now()
    grant(customer, recorded_at=now)
    # A withdrawal typed in later but dated earlier does not override the later grant.
    withdraw(customer, recorded_at=now - datetime.timedelta(days=1))
    assert purposes_of(customer) == [EMAIL]


def test_bulk_inserted_and_deleted_consents_keep_the_column_in_step(customer, make_customer):
    other = make_customer("李娜")
    Consent.objects.bulk_create(
        [
            Consent(customer=customer, purpose=EMAIL, granted=True),
            Consent(customer=other, purpose=SMS, granted=True),
        ]
    )
    assert (purposes_of(customer), purposes_of(other)) == ([EMAIL], [SMS])
    Consent.objects.filter(customer=other).delete()
    assert purposes_of(other) == []


def test_a_stale_customer_saved_after_a_consent_change_keeps_the_consent(customer):
    stale = Customer.objects.get(pk=customer.pk)
    grant(customer)
    stale.company = "新公司"
    stale.save()
    assert purposes_of(customer) == [EMAIL]


def test_merge_and_undo_move_the_consent_state_with_the_records(
    customer, make_customer, admin_user
):
    merged = make_customer("张伟 (2)", owner=customer.owner, team=customer.team)
    grant(merged, SMS)
    merge = merging.merge_customers(
        survivor=customer,
        merged=merged,
        user=admin_user,
        survivor_version=customer.version,
        merged_version=Customer.objects.get(pk=merged.pk).version,
    )
    assert purposes_of(customer) == [SMS]
    merging.undo_merge(merge, user=admin_user)
    assert (purposes_of(customer), purposes_of(merged)) == ([], [SMS])


def test_consent_filter_uses_the_gin_index(customer):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = consents.consenting(Customer.objects.all(), EMAIL).explain()
    assert "customer_consents_idx" in plan


# Staff on the customer page ----------------------------------------------------------------


def change_url(customer):
    return reverse("customers:consent_change", args=[customer.pk])


def test_staff_withdraws_with_one_post_and_it_is_audited(staff_client, customer, staff):
    grant(customer)
    response = staff_client.post(
        change_url(customer), {"purpose": EMAIL, "granted": "false", "source": "expo"}
    )
    assert response.status_code == 302
    latest = consents.current_state(customer, EMAIL)
    assert (latest.granted, latest.source, latest.recorded_by) == (False, "expo", staff)
    entry = AuditEntry.objects.filter(action=Action.CONSENT_CHANGE).first()
    assert entry.customer_id == customer.pk
    assert entry.data["before"] is True and entry.data["granted"] is False
    assert purposes_of(customer) == []


def test_staff_grant_records_the_wording(staff_client, customer):
    staff_client.post(
        change_url(customer),
        {
            "purpose": SMS,
            "granted": "true",
            "source": "store",
            "wording": "我愿意接收短信",
            "wording_version": "3",
        },
    )
    latest = consents.current_state(customer, SMS)
    assert (latest.granted, latest.wording, latest.wording_version) == (True, "我愿意接收短信", "3")


def test_grant_without_wording_is_refused_with_a_message(staff_client, customer, english):
    response = staff_client.post(
        change_url(customer), {"purpose": SMS, "granted": "true", "source": "store"}, follow=True
    )
    assert "Give the wording the customer agreed to" in response.content.decode()
    assert not Consent.objects.filter(customer=customer).exists()


def test_consent_change_refuses_get_outsiders_and_viewers(
    client, customer, staff2, viewer, staff_client
):
    assert staff_client.get(change_url(customer)).status_code == 405
    data = {"purpose": EMAIL, "granted": "false", "source": "other"}
    client.force_login(staff2)
    assert client.post(change_url(customer), data).status_code == 404
    client.force_login(viewer)
    assert client.post(change_url(customer), data).status_code == 403
    assert not Consent.objects.filter(customer=customer).exists()


def test_customer_page_shows_each_purpose_state_and_history(staff_client, customer, english):
    grant(customer, EMAIL, wording_version="v2")
    withdraw(customer, EMAIL)
    grant(customer, SMS)
    page = staff_client.get(customer.get_absolute_url()).content.decode()
    assert 'data-purpose="marketing_email"' in page
    assert "Never asked" in page  # phone calls and data processing
    assert "History (2 records)" in page
    assert "wording v2" in page
    assert "Withdraw SMS" in page and "Grant Marketing email" in page


def test_existing_record_form_is_audited_too(staff_client, customer):
    staff_client.post(
        reverse("customers:consent_create", args=[customer.pk]),
        {
            "purpose": SMS,
            "granted": "true",
            "recorded_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "source": "store",
            "wording": "好",
        },
    )
    assert purposes_of(customer) == [SMS]
    assert AuditEntry.objects.filter(action=Action.CONSENT_CHANGE).count() == 1


def test_record_form_refuses_a_grant_without_its_wording(staff_client, customer, english):
    response = staff_client.post(
        reverse("customers:consent_create", args=[customer.pk]),
        {
            "purpose": SMS,
            "granted": "true",
            "recorded_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "source": "store",
        },
    )
    assert response.status_code == 200
    assert "Give the wording the customer agreed to" in response.content.decode()
    assert purposes_of(customer) == []
    assert not customer.consents.exists()


# The public page and one-click unsubscribe ------------------------------------------------


def manage_url(token):
    return reverse("consents:manage", args=[token])


def test_public_page_withdraws_with_one_click_and_needs_csrf(customer, english):
    grant(customer, EMAIL)
    grant(customer, SMS)
    token = consents.token_for_customer(customer)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(manage_url(token))
    text = page.content.decode()
    assert page.status_code == 200
    assert "z***@example.com" in text
    # Nothing else about the customer: not their name, phone or company.
    for private in ("张伟", "13800138000", "8000", "华东贸易"):
        assert private not in text
    assert browser.post(manage_url(token), {"purpose": EMAIL}).status_code == 403
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(manage_url(token), {"purpose": EMAIL, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    assert purposes_of(customer) == [SMS]
    done = browser.get(response["Location"])
    assert "Your choice was recorded" in done.content.decode()
    entry = AuditEntry.objects.filter(action=Action.CONSENT_CHANGE).first()
    assert entry.data["via"] == "link" and entry.actor_username == ""


def test_public_page_withdraws_everything_at_once(customer, client):
    grant(customer, EMAIL)
    grant(customer, SMS)
    client.post(manage_url(consents.token_for_customer(customer)), {"purpose": "all"})
    assert purposes_of(customer) == []
    # Only what was granted gets a withdrawal record.
    assert Consent.objects.filter(customer=customer, granted=False).count() == 2


@pytest.mark.parametrize(
    "token",
    ["nonsense", "eyJjIjoiMSJ9:AAAAAAAAAAAAAAAAAAAAAAAAAAA", "x" * 500, "%00", "a:b:c"],
)
def test_tampered_or_unknown_tokens_get_a_clear_page_not_an_error(client, customer, token, english):
    response = client.get(manage_url(token))
    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()
    assert client.post(manage_url(token), {"purpose": "all"}).status_code == 404
    assert client.post(reverse("consents:one_click", args=[token])).status_code == 404


def test_token_signed_for_one_customer_cannot_be_edited_to_another(customer, make_customer):
    other = make_customer("李娜")
    token = consents.token_for_customer(customer)
    # The other customer's payload under this customer's signature.
    forged = consents.token_for_customer(other).split(":")[0] + ":" + token.split(":")[1]
    assert consents.customer_for_token(forged) is None
    assert consents.customer_for_token(token) == customer


def test_token_of_a_deleted_customer_is_refused(client, customer):
    token = consents.token_for_customer(customer)
    Customer.objects.filter(pk=customer.pk).delete()
    assert client.get(manage_url(token)).status_code == 404


def test_public_page_speaks_chinese(customer, client):
    grant(customer, EMAIL)
    page = client.get(manage_url(consents.token_for_customer(customer)) + "?lang=zh-hans")
    assert page.status_code == 200
    assert 'lang="zh-hans"' in page.content.decode()


def test_list_unsubscribe_one_click_post_withdraws_marketing_email(customer, english):
    grant(customer, EMAIL)
    grant(customer, SMS)
    token = consents.token_for_customer(customer)
    # A mail client posts without cookies or a CSRF token (RFC 8058).
    mail_client = Client(enforce_csrf_checks=True)
    response = mail_client.post(
        reverse("consents:one_click", args=[token]),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert purposes_of(customer) == [SMS]
    entry = AuditEntry.objects.filter(action=Action.CONSENT_CHANGE).first()
    assert entry.data["via"] == "list_unsubscribe"
    # Opening the address in a browser shows the page and changes nothing.
    opened = mail_client.get(reverse("consents:one_click", args=[token]))
    assert opened.status_code == 302 and opened["Location"] == manage_url(token)


def test_unsubscribe_headers_point_at_the_one_click_endpoint(customer, settings):
    settings.SITE_URL = "https://cims.example.com"
    token = consents.token_for_customer(customer)
    headers = consents.unsubscribe_headers(token)
    assert headers["List-Unsubscribe"] == (
        f"<https://cims.example.com{reverse('consents:one_click', args=[token])}>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_email_token_for_an_unknown_address_works_once_a_customer_has_it(make_customer):
    token = consents.token_for_email("New.Person@Example.com")
    assert consents.customer_for_token(token) is None
    person = make_customer("新客户", email="new.person@example.com")
    assert consents.customer_for_token(token) == person


# Lists and exports -------------------------------------------------------------------------


def names_in(csv_response):
    """The Name column of an exported CSV."""
    import csv
    import io

    rows = csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig")))
    return {row[0] for row in rows if row}


def test_withdrawn_customer_disappears_from_the_consent_filtered_list_and_export(
    manager_client, customer, make_customer, english
):
    other = make_customer("李娜", owner=customer.owner, team=customer.team)
    grant(customer)
    grant(other)
    listing = reverse("customers:list") + f"?consent={EMAIL}"
    export = reverse("files:export_customers") + f"?consent={EMAIL}&format=csv"
    page = manager_client.get(listing).content.decode()
    mine, theirs = customer.get_absolute_url(), other.get_absolute_url()
    assert mine in page and theirs in page
    assert names_in(manager_client.get(export)) >= {"张伟", "李娜"}

    client = Client()
    client.post(manage_url(consents.token_for_customer(customer)), {"purpose": EMAIL})

    page = manager_client.get(listing).content.decode()
    assert mine not in page and theirs in page
    names = names_in(manager_client.get(export))
    assert "张伟" not in names and "李娜" in names
    refused = reverse("customers:list") + f"?consent=no_{EMAIL}"
    assert mine in manager_client.get(refused).content.decode()


def test_consent_filter_combines_purposes(customer, make_customer):
    from customers.filters import CustomerFilter

    both = make_customer("两者")
    grant(both, EMAIL)
    grant(both, SMS)
    grant(customer, EMAIL)
    matched = CustomerFilter({"consent": [EMAIL, SMS]}, queryset=Customer.objects.all()).qs
    assert list(matched) == [both]
    email_only = CustomerFilter({"consent": [EMAIL, f"no_{SMS}"]}, queryset=Customer.objects.all())
    assert list(email_only.qs) == [customer]


def test_unknown_consent_filter_value_is_a_form_error(manager_client, customer):
    response = manager_client.get(reverse("customers:list") + "?consent=everything")
    assert response.status_code == 400


def test_demo_load_writes_consented_purposes_as_the_triggers_would():
    import io

    from django.core.management import call_command

    call_command("seed_demo", customers=60, stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE consented_purposes <> '{}'), "
            "count(*) FILTER (WHERE consented_purposes <> customers_current_consents(id)) "
            "FROM customers_customer"
        )
        total, consenting, wrong = cursor.fetchone()
    assert total >= 60 and consenting > 0 and wrong == 0


def test_measure_consent_filter_reports_times_and_plans(customer):
    grant(customer)
    figures = consents.measure_consent_filter(runs=1)
    assert figures["count granted"]["result"] == 1
    assert figures["count not granted"]["result"] == 0
    assert "customer" in figures["plans"]["ids granted"]


@pytest.mark.parametrize("payload", [{"c": "not-a-uuid"}, {"e": "zz"}, ["c"], {"x": 1}])
def test_signed_token_with_a_malformed_payload_names_no_one(client, payload):
    from django.core import signing

    token = signing.Signer(salt=consents.TOKEN_SALT).sign_object(payload)
    assert consents.customer_for_token(token) is None
    assert client.get(manage_url(token)).status_code == 404
