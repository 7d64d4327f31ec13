"""A visitor confirms their email with the code; staff decide a submitted change."""

import re
import time

import pytest
from django.core import mail
from playwright.sync_api import expect

from customers.models import Customer
from intake import services
from intake.answer_forms import AnswerForm
from intake.models import Form, FormField, Submission
from tests.intake.conftest import CONTACT_FIELDS, built_form  # noqa: F401

pytestmark = pytest.mark.e2e


def test_visitor_confirms_their_email_and_is_made_a_customer(
    celery_worker,
    page,
    live_server,
    built_form,  # noqa: F811
    settings,
):
    settings.INTAKE_VERIFY_RESEND_SECONDS = 2
    built_form(*CONTACT_FIELDS, slug="confirm", title_en="Newsletter", verify=Form.Verify.EMAIL)
    page.goto(f"{live_server.url}/f/confirm/?lang=en")
    page.fill('input[name="name"]', "Wang Fang")
    page.fill('input[name="email"]', "wang.fang@example.com")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_text("w***@example.com")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    resend = page.locator("[data-countdown]")
    expect(resend).to_be_disabled()
    expect(resend).to_have_text(re.compile(r"Send a new code in \d s"))
    # The script counts down and then offers a new code.
    expect(resend).to_be_enabled(timeout=5_000)
    expect(resend).to_have_text("Send a new code")

    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    field = page.get_by_label("Verification code")
    expect(field).to_have_attribute("inputmode", "numeric")
    field.fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("That code is not right. You have 4 more attempts.")).to_be_visible()
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    deadline = time.monotonic() + 20
    while Submission.objects.get().state != Submission.State.DONE:
        assert time.monotonic() < deadline, "the worker did not process the submission"
        time.sleep(0.05)
    assert Customer.objects.with_email("wang.fang@example.com").get().display_name == "Wang Fang"


def test_staff_accepts_a_submitted_company(staff_page, live_server, customer, built_form):  # noqa: F811
    form = built_form(
        {"key": "email", "type": FormField.Type.EMAIL, "target": "customer:email"},
        {
            "key": "company",
            "type": FormField.Type.TEXT,
            "label": "公司",
            "target": "customer:company",
        },
        title_en="Update your details",
    )
    answer_form = AnswerForm(form, data={"email": "zhang.wei@example.com", "company": "杭州新公司"})
    assert answer_form.is_valid()
    readable, private = answer_form.answers()
    submission = Submission.objects.create(
        form=form, state="received", answers=readable, private_answers=private
    )
    services.apply_submission(submission)

    staff_page.goto(f"{live_server.url}{customer.get_absolute_url()}")
    staff_page.get_by_role("link", name="1 submitted change waiting for review").click()
    expect(staff_page.get_by_role("heading", name="Submitted changes")).to_be_visible()
    row = staff_page.get_by_role("row").filter(has_text="杭州新公司")
    expect(row).to_contain_text("上海华东贸易有限公司")
    row.get_by_role("button", name="Accept").click()
    expect(staff_page.get_by_text("1 change to 张伟 accepted.")).to_be_visible()
    expect(staff_page.get_by_text("Nothing waits for review.")).to_be_visible()
    assert Customer.objects.get(pk=customer.pk).company == "杭州新公司"
