import datetime
import decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from customers import partitions
from customers.models import Interaction, Order

pytestmark = pytest.mark.e2e


def test_older_history_reaches_the_archived_months_marked_archived(
    staff_page, customers, staff, settings, screenshot
):
    customer = customers["张伟"]
    now = timezone.now()
    for n in range(20):
        Interaction.objects.create(
            customer=customer, kind="visit", summary=f"Visit {n}", created_by=staff,
            occurred_at=now - datetime.timedelta(hours=n + 1),
        )  # fmt: skip
    long_ago = partitions.month_start(partitions.add_months(partitions.month_of(now), -40))
    Order.objects.create(
        customer=customer, external_id="SO-2019", amount=decimal.Decimal("88.00"),
        ordered_at=long_ago.replace(day=10),
    )  # fmt: skip
    Interaction.objects.create(
        customer=customer, kind="call", summary="First call, long ago", created_by=staff,
        occurred_at=long_ago.replace(day=9),
    )  # fmt: skip
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 36
    assert len(partitions.archive_history()) == 2

    page = staff_page
    page.goto(customer.get_absolute_url())
    timeline = page.locator(".timeline")
    expect(timeline.locator(".timeline-entry")).to_have_count(20)
    expect(timeline.locator(".archived")).to_have_count(0)
    # The totals count the archived order with the live one.
    expect(page.locator(".figure").first).to_contain_text("2")
    page.get_by_role("link", name="Show older").click()
    archived = timeline.locator(".timeline-entry.archived")
    expect(archived).to_have_count(2)
    expect(archived.first).to_contain_text("SO-2019")
    expect(archived.first.locator(".badge")).to_have_text("Archived")
    expect(archived.last).to_contain_text("First call, long ago")
    expect(archived.last).to_contain_text(str(staff))
    archived.last.scroll_into_view_if_needed()
    screenshot(page, "customer-archived-history")
