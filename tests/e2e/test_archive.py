import pytest
from playwright.sync_api import expect

from accounts.audit import Action, AuditEntry
from customers import archiving
from customers.models import ArchivedCustomer, Customer, Order

pytestmark = pytest.mark.e2e


def test_staff_finds_an_archived_customer_opens_and_restores_them(
    staff_page, customers, screenshot
):
    zhang = customers["张伟"]
    archiving.archive_customers([zhang.pk])
    page = staff_page
    page.goto("/customers/")
    expect(page.get_by_role("link", name="张伟")).to_have_count(0)

    page.get_by_role("searchbox").fill("zhang wei")
    expect(page.get_by_text("No customers match.")).to_be_visible()
    # Checking the box shows the archive at once, as typing searches.
    page.get_by_label("Include archive").check()

    archive = page.locator("#archive-results")
    expect(archive.get_by_text("1 archived customer", exact=True)).to_be_visible()
    screenshot(page, "archive-search")
    archive.get_by_role("link", name="张伟").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Archived")
    expect(page.get_by_text("138****8000")).to_be_visible()
    expect(page.get_by_text("Asked about the spring catalogue")).to_be_visible()
    expect(page.get_by_text("Order SO-1001")).to_be_visible()
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    screenshot(page, "archived-customer")

    page.get_by_role("button", name="Restore to live customers").click()

    expect(page.get_by_role("status")).to_contain_text("is back among the live customers")
    expect(page.get_by_role("link", name="Edit")).to_be_visible()
    assert page.url.endswith(zhang.get_absolute_url())
    assert Customer.objects.filter(pk=zhang.pk).exists()
    assert not ArchivedCustomer.objects.exists()
    assert Order.objects.filter(customer=zhang).count() == 1
    assert AuditEntry.objects.filter(action=Action.CUSTOMER_RESTORE).count() == 1


def test_include_archive_works_without_javascript(
    browser, device, live_server, client, staff, customers
):
    from django.conf import settings

    from tests.e2e.conftest import DEVICES

    archiving.archive_customers([customers["李娜"].pk])
    context = browser.new_context(
        **DEVICES[device], base_url=live_server.url, java_script_enabled=False, locale="en-US"
    )
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    try:
        page = context.new_page()
        page.goto("/customers/")
        page.get_by_role("searchbox").fill("李娜")
        page.get_by_label("Include archive").check()
        page.get_by_role("button", name="Search", exact=True).click()
        archive = page.locator("#archive-results")
        expect(archive.get_by_role("link", name="李娜")).to_be_visible()
        assert "archive=on" in page.url
    finally:
        context.close()
