import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts import audit

pytestmark = pytest.mark.e2e


def test_auditor_finds_who_showed_a_customers_phone(
    context, live_server, client, auditor, staff, customers, screenshot
):
    audit.record(
        audit.Action.REVEAL, target=customers["张伟"], actor=staff, data={"field": "phone"}
    )
    audit.record(audit.Action.LOGIN, target=staff, actor=staff)
    client.force_login(auditor)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    filters = page.locator("#audit-form")
    if not filters.get_by_label("Action").is_visible():
        filters.locator("summary").first.click()
    filters.get_by_label("Action").select_option(value=audit.Action.REVEAL)
    filters.get_by_role("button", name="Search").click()
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("staff")
    expect(rows.first).to_contain_text("张伟")
    screenshot(page, "audit-trail")
