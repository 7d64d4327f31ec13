"""Consents in the browser: staff withdraw one on the customer page and read its history, and
a customer withdraws from the emailed link; on a desktop screen and on a 375 px phone."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from customers import consents
from customers.models import Customer

pytestmark = pytest.mark.e2e


def grant(customer, purpose, wording):
    consents.record_consent(
        customer=customer, purpose=purpose, granted=True, source="store", wording=wording
    )


def fits_the_screen(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_staff_withdraws_a_consent_then_reads_its_history(staff_page, customer, screenshot):
    grant(customer, "marketing_email", "我愿意接收邮件资讯")
    page = staff_page
    page.goto(customer.get_absolute_url())
    section = page.get_by_role("region", name="Consents")
    email = section.locator('[data-purpose="marketing_email"]')
    expect(email).to_contain_text("Granted")
    expect(section.locator('[data-purpose="sms"]')).to_contain_text("Never asked")

    email.get_by_label("How the customer told us").select_option("expo")
    email.get_by_role("button", name="Withdraw Marketing email").click()

    expect(page.get_by_role("status")).to_have_text("Consent to Marketing email withdrawn.")
    email = page.get_by_role("region", name="Consents").locator('[data-purpose="marketing_email"]')
    expect(email.locator(".consent-summary")).to_contain_text("Withdrawn")
    expect(email.locator(".consent-summary")).to_contain_text("Expo")
    email.get_by_text(re.compile(r"History \(2 records\)")).click()
    history = email.locator(".consent-history li")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Withdrawn")
    expect(history.nth(1)).to_contain_text("Granted")
    expect(history.nth(1)).to_contain_text("我愿意接收邮件资讯")
    assert fits_the_screen(page)
    screenshot(page, "customer-consents")
    assert Customer.objects.get(pk=customer.pk).consented_purposes == []


def test_staff_grants_a_consent_with_its_wording(staff_page, customer):
    page = staff_page
    page.goto(customer.get_absolute_url())
    sms = page.get_by_role("region", name="Consents").locator('[data-purpose="sms"]')
    sms.get_by_text("Grant…").click()
    sms.get_by_label("Wording the customer agreed to").fill("可以发短信")
    sms.get_by_role("button", name="Grant SMS").click()
    expect(page.get_by_role("status")).to_have_text("Consent to SMS recorded.")
    assert Customer.objects.get(pk=customer.pk).consented_purposes == ["sms"]


def test_customer_withdraws_from_the_emailed_link(page, customer, screenshot):
    grant(customer, "marketing_email", "邮件")
    grant(customer, "sms", "短信")
    page.goto(reverse("consents:manage", args=[consents.token_for_customer(customer)]))
    expect(page.get_by_role("heading", name="Your consents")).to_be_visible()
    expect(page.get_by_text("z***@example.com")).to_be_visible()
    page.get_by_role("button", name="Withdraw consent to SMS").click()
    expect(page.get_by_role("status")).to_contain_text("Your choice was recorded")
    expect(page.locator('[data-purpose="sms"]')).to_contain_text("Withdrawn")
    expect(page.locator('[data-purpose="marketing_email"]')).to_contain_text("Granted")
    assert fits_the_screen(page)
    screenshot(page, "public-consents")
    assert Customer.objects.get(pk=customer.pk).consented_purposes == ["marketing_email"]
