"""The dashboard in a real browser: charts drawn within the Content Security Policy, and a
click on a bar or a funnel slice opening the customer list filtered to it."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CHARTS = ("signups", "provinces", "revenue", "funnel", "tags")


def click_item(page, chart_id, point, series=0):
    """Click where ECharts draws the data point `point` (in the coordinates of `series`)."""
    page.wait_for_function(
        "id => window.echarts && echarts.getInstanceByDom(document.getElementById(id))",
        arg=chart_id,
    )
    x, y = page.evaluate(
        "([id, point, series]) => echarts.getInstanceByDom(document.getElementById(id))"
        ".convertToPixel({seriesIndex: series}, point)",
        [chart_id, point, series],
    )
    element = page.locator(f"#{chart_id}")
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_dashboard_draws_its_charts(staff_page, customers, screenshot):
    page = staff_page
    page.goto("/dashboard/")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    for name in CHARTS:
        expect(page.locator(f"#chart-{name}.chart-drawn canvas")).to_have_count(1)
    # The figures: three customers, one of them active, with one order of 1,288.00.
    expect(page.locator("[data-figure=total]")).to_have_text("3")
    expect(page.locator("[data-figure=active]")).to_have_text("1")
    expect(page.locator("[data-figure=revenue]")).to_contain_text("1,288.00")
    screenshot(page, "dashboard")


def test_clicking_a_province_bar_opens_its_customers(staff_page, customers):
    page = staff_page
    page.goto("/dashboard/")
    # Two customers have no province (the first bar), 张伟 is in 上海市 (the second).
    labels = page.locator("#table-provinces tbody td:first-child a")
    expect(labels).to_have_text(["Not specified", "上海市"])
    click_item(page, "chart-provinces", [0.5, 1])
    expect(page).to_have_url(re.compile(r"/customers/\?province=%E4%B8%8A%E6%B5%B7%E5%B8%82$"))
    expect(page.get_by_role("link", name="张伟")).to_be_visible()
    expect(page.get_by_role("link", name="王芳")).to_have_count(0)


def test_clicking_a_months_channel_opens_the_customers_it_brought(staff_page, customers):
    page = staff_page
    page.goto("/dashboard/")
    # 张伟 came from a store this month: the third series (store), the last month.
    click_item(page, "chart-signups", [11, 0.5], series=2)
    expect(page).to_have_url(
        re.compile(r"/customers/\?source=store&created_after=.*&created_before=")
    )
    expect(page.get_by_role("link", name="张伟")).to_be_visible()
    expect(page.get_by_role("link", name="王芳")).to_have_count(0)


def test_the_tables_link_to_the_same_lists(staff_page, customers):
    page = staff_page
    page.goto("/dashboard/")
    page.locator("#table-funnel").get_by_role("link", name="Lead").click()
    expect(page).to_have_url(re.compile(r"/customers/\?status=lead$"))
    expect(page.get_by_role("link", name="王芳")).to_be_visible()
    expect(page.get_by_role("link", name="张伟")).to_have_count(0)
