"""Every email CIMS sends a customer carries a way to withdraw consent: a link to a page and
List-Unsubscribe headers for one click in the mail client (RFC 8058)."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from customers.models import Customer
from intake import services
from intake.models import Submission
from tests.intake.test_verification import email_form, smtp_inbox, submit  # noqa: F401

pytestmark = pytest.mark.django_db

CONSENT_LINK = re.compile(r"http://testserver(/privacy/consents/\S+/)")


def test_verification_email_links_to_the_consent_page_and_has_one_click_headers(
    smtp_inbox,  # noqa: F811
    email_form,  # noqa: F811
    django_capture_on_commit_callbacks,
    english,
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    message = smtp_inbox.messages[-1][1]
    page_path = CONSENT_LINK.search(smtp_inbox.body()).group(1)
    one_click = message["List-Unsubscribe"]
    assert re.fullmatch(r"<http://testserver/privacy/unsubscribe/\S+/>", one_click)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Sent before the customer exists: the link names the address, and works once they do.
    visitor = Client()
    assert visitor.get(page_path).status_code == 404
    visitor.get(smtp_inbox.link_path())  # verified
    services.apply_submission(Submission.objects.get(pk=submission.pk))
    customer = Customer.objects.with_email("wang.fang@example.com").get()
    assert customer.consented_purposes == ["marketing_email"]
    page = visitor.get(page_path)
    assert page.status_code == 200
    assert "w***@example.com" in page.content.decode()

    mail_client = Client(enforce_csrf_checks=True)
    response = mail_client.post(
        one_click.strip("<>").removeprefix("http://testserver"),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Customer.objects.get(pk=customer.pk).consented_purposes == []


def test_email_to_a_known_customer_names_the_customer(
    smtp_inbox,  # noqa: F811
    email_form,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    customer = Customer.objects.create(display_name="王芳", email="wang.fang@example.com")
    submit(email_form, django_capture_on_commit_callbacks)
    page_path = CONSENT_LINK.search(smtp_inbox.body()).group(1)
    # The customer's email changes; the link still finds them.
    customer.email = "fang@example.org"
    customer.save()
    token = page_path.split("/")[-2]
    assert Client().get(reverse("consents:manage", args=[token])).status_code == 200
