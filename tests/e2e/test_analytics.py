"""The customer analytics page in a real browser: charts drawn within the Content Security
Policy, tables that say the same, a segment link to the filtered customer list, a refresh."""

import datetime
import re
from decimal import Decimal

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers.models import Customer, Order
from reports import metrics

pytestmark = pytest.mark.e2e


@pytest.fixture
def buyers(transactional_db, manager, teams):
    """Ten customers of the manager's team; the first six bought, some of them often."""
    customers = [
        Customer.objects.create(display_name=f"客户{i}", owner=manager, team=teams[0])
        for i in range(10)
    ]
    number = 0
    for i, customer in enumerate(customers[:6]):
        for month in range(1 + i % 3):
            number += 1
            Order.objects.create(
                customer=customer,
                external_id=f"E-{number}",
                ordered_at=datetime.datetime(2025, 1 + month + i, 1, 12, tzinfo=datetime.UTC),
                amount=Decimal(100 * (i + 1)),
                lines=[{"product": "茶叶", "quantity": 1, "unit_price": "100"}],
            )
    metrics.refresh_metrics()
    return customers


@pytest.fixture
def manager_page(context, live_server, manager, verified_login):
    from django.test import Client

    client = verified_login(Client(), manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_analytics_page_draws_its_charts_and_links_to_the_customers(manager_page, buyers):
    page = manager_page
    page.goto("/reports/customers/")
    expect(page.get_by_role("heading", name="Customer analytics")).to_be_visible()
    drawn = page.locator(".chart.chart-drawn")
    expect(drawn).to_have_count(2)
    for chart in drawn.all():
        expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator("[data-formula]")).to_contain_text("Predicted LTV = average order value")
    expect(page.locator("#cohort-table tbody tr")).to_have_count(12)
    no_orders = page.locator('#segment-table tr[data-segment="none"]')
    expect(no_orders.locator("td").first).to_have_text("4")
    no_orders.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/customers/\?segment=none$"))
    expect(page.locator(".customer-table tbody tr")).to_have_count(4)


def test_a_manager_refreshes_the_analytics_and_sees_it_queued(manager_page, buyers):
    page = manager_page
    page.goto("/reports/customers/")
    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_role("heading", name="Refreshing customer analytics")).to_be_visible()
    expect(page.locator("#progress [role=status]")).to_contain_text("Waiting for a worker")
