"""A manager schedules a saved report in the browser, corrects a mistake, pauses it."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from reports.models import SavedReport, Schedule

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_schedules_a_report_weekly_and_pauses_it(manager_page, manager, screenshot):
    manager.email = "manager@example.com"
    manager.save(update_fields=["email"])
    SavedReport.objects.create(
        name="Customers by province",
        definition={
            "source": "customers",
            "group_by": ["province"],
            "aggregates": [{"func": "count"}],
        },
        owner=manager,
    )
    page = manager_page
    page.goto("/reports/schedules/")
    expect(page.get_by_text("No scheduled reports yet.")).to_be_visible()
    page.get_by_role("link", name="New schedule").click()

    page.get_by_label("Report").select_option(label="Customers by province")
    page.get_by_label("PDF and Excel").check()
    page.get_by_label("Monthly").check()
    page.locator("input[name=time]").fill("07:30")
    page.get_by_role("button", name="Create schedule").click()
    # A monthly schedule needs its day: the form says so and keeps what was entered.
    expect(page.get_by_text("Choose the day of the month, 1 to 31.")).to_be_visible()
    expect(page.get_by_label("Monthly")).to_be_checked()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_label("Day of the month").fill("31")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("heading", name="Customers by province")).to_be_visible()
    schedule = Schedule.objects.get()
    local = schedule.next_run_local()
    assert (local.hour, local.minute) == (7, 30)
    expect(page.get_by_text("Monthly on day 31 at 07:30 (Asia/Shanghai)")).to_be_visible()
    expect(page.locator("[data-next-run]")).to_have_text(f"{local:%Y-%m-%d %H:%M} (Asia/Shanghai)")
    screenshot(page, "schedule-detail")

    page.get_by_role("button", name="Pause").click()
    expect(
        page.get_by_text("The schedule is paused; nothing is sent until resumed.")
    ).to_be_visible()
    expect(page.locator("[data-next-run]")).to_have_text("Paused")
    page.get_by_role("link", name="Scheduled reports").first.click()
    expect(page.get_by_role("cell", name="Paused")).to_be_visible()
    expect(page.get_by_role("link", name="Customers by province")).to_be_visible()
    assert re.search(r"Monthly on day 31", page.content())
