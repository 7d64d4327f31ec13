"""The report builder's consent filter in a real browser: a marketing list that leaves out a
customer who withdrew, saved, and described on the report's page."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers import consents

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_saves_a_list_of_customers_who_consent_to_marketing_email(
    manager_page, customers, screenshot
):
    for name, granted in [("张伟", [True]), ("王芳", [True, False])]:
        for state in granted:
            consents.record_consent(
                customer=customers[name],
                purpose="marketing_email",
                granted=state,
                source="store",
            )
    page = manager_page
    page.goto("/reports/new/")
    page.locator('input[name="columns"][value="name"]').check()
    page.locator('input[name="columns"][value="consents"]').check()
    page.get_by_label("Filter 1").select_option(label="Consents to")
    page.locator("#id_filter_0_op").select_option(label="is granted")
    page.locator("#id_filter_0_value").fill("Marketing email")
    page.get_by_role("button", name="Run").click()

    result = page.locator("table.report-table")
    expect(result.locator("thead th")).to_have_text(["Name", "Consents to"])
    expect(result.locator("tbody tr")).to_have_text(["张伟Marketing email"])
    screenshot(page, "report-consent-filter")

    page.locator("#id_name").fill("Newsletter")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Newsletter")).to_be_visible()
    filters = page.locator("dl.report-filters")
    expect(filters).to_contain_text("Consents to")
    expect(filters).to_contain_text("Marketing email: is granted")
    expect(page.locator("table.report-table tbody tr")).to_have_count(1)
