import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts import audit, permissions

pytestmark = pytest.mark.e2e


def test_staff_shows_a_masked_phone_and_the_look_is_recorded(staff_page, customers, screenshot):
    page = staff_page
    page.goto(customers["张伟"].get_absolute_url())
    phone = page.locator("#sensitive-phone")
    expect(phone).to_contain_text("138****8000")
    phone.get_by_role("button", name="Show").click()
    expect(phone.get_by_role("link", name="138 0013 8000")).to_be_visible()
    # The email next to it stays masked: each value is its own recorded click.
    expect(page.locator("#sensitive-email")).to_contain_text("z***@example.com")
    screenshot(page, "customer-revealed-phone")
    entry = audit.AuditEntry.objects.get(action=audit.Action.REVEAL)
    assert entry.data == {"field": "phone"} and entry.customer_id == customers["张伟"].pk


def test_owner_shares_a_customer_with_a_colleague_of_another_team(
    staff_page, customers, staff2, screenshot
):
    page = staff_page
    page.goto(customers["王芳"].get_absolute_url())
    sharing = page.locator("#sharing")
    expect(sharing.get_by_text("Not shared with anyone.")).to_be_visible()
    sharing.get_by_label("Share with").select_option(label=staff2.display_name)
    sharing.get_by_label("Access").select_option(label="View and change")
    sharing.get_by_role("button", name="Share").click()

    expect(page.get_by_role("status")).to_contain_text("is shared with")
    expect(page.locator("#sharing li")).to_contain_text("view, change")
    assert permissions.can(staff2, "change", customers["王芳"])
    screenshot(page, "customer-shared")

    page.locator("#sharing").get_by_role("button", name="Withdraw").click()
    expect(page.locator("#sharing").get_by_text("Not shared with anyone.")).to_be_visible()
    assert not permissions.visible_customers(staff2).filter(pk=customers["王芳"].pk).exists()


def test_viewer_sees_masked_values_without_a_show_button(
    context, live_server, client, viewer, customers
):
    client.force_login(viewer)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(customers["张伟"].get_absolute_url())
    expect(page.locator("#sensitive-phone")).to_have_text("138****8000")
    expect(page.get_by_role("button", name="Show")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
