"""The pivot in a real browser: choosing dimensions, the table and its chart drawn within the
Content Security Policy, and a cell or a bar opening the customers behind it."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_pivots_by_province_and_status_and_opens_a_cell(
    manager_page, customers, screenshot
):
    page = manager_page
    page.goto("/reports/analysis/")
    page.get_by_label("Rows").select_option(label="Province")
    page.get_by_label("Columns").select_option(label="Status")
    page.get_by_label("Measure").select_option(label="Customers")
    page.get_by_role("button", name="Show").click()

    table = page.locator("table.pivot-table")
    # 张伟 in 上海市 (active); 王芳 (lead) and 李娜 (prospect) without a province.
    expect(table.locator("thead th")).to_have_text(
        ["Province \\ Status", "Lead", "Prospect", "Active", "Total"]
    )
    expect(table.locator("tbody th")).to_have_text(["上海市", "Not set"])
    expect(table.locator("tfoot td")).to_have_text(["1", "1", "1", "3"])
    expect(page.locator("#pivot-chart.chart-drawn canvas")).to_have_count(1)
    screenshot(page, "analysis-pivot")

    row = table.locator("tbody tr").filter(has_text="上海市")
    row.locator("td").nth(2).get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/customers/\?province=.+&status=active$"))
    expect(page.get_by_role("link", name="张伟")).to_be_visible()
    expect(page.get_by_role("link", name="王芳")).to_have_count(0)


def test_a_bar_of_the_chart_opens_its_customers(manager_page, customers):
    page = manager_page
    page.goto("/reports/analysis/?rows=status&measure=customers")
    page.wait_for_function(
        "() => window.echarts && echarts.getInstanceByDom(document.getElementById('pivot-chart'))"
    )
    # Statuses in their order: lead (王芳), prospect, active; click the middle of the first bar.
    x, y = page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('pivot-chart'))"
        ".convertToPixel({seriesIndex: 0}, [0, 0.5])"
    )
    chart = page.locator("#pivot-chart")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page).to_have_url(re.compile(r"/customers/\?status=lead$"))
    expect(page.get_by_role("link", name="王芳")).to_be_visible()
    expect(page.get_by_role("link", name="张伟")).to_have_count(0)


def test_manager_builds_runs_and_saves_a_report(manager_page, customers, screenshot):
    page = manager_page
    page.goto("/reports/new/")
    page.get_by_label("Report on").select_option(label="Orders")
    page.get_by_role("button", name="Choose").click()
    page.get_by_label("Group by").select_option(label="Channel")
    page.get_by_label("Figure 1").select_option(label="Sum")
    page.locator("#id_agg_0_field").select_option(label="Amount")
    page.get_by_label("Chart", exact=True).select_option(label="Bars")
    page.get_by_role("button", name="Run").click()

    result = page.locator("table.report-table")
    expect(result.locator("thead th")).to_have_text(["Channel", "Sum: Amount"])
    expect(result.locator("tbody tr")).to_have_text([re.compile(r"Store\s*1288(\.00)?")])
    expect(page.locator("#report-chart.chart-drawn canvas")).to_have_count(1)
    expect(page.get_by_label("Report on")).to_have_value("orders")
    screenshot(page, "report-builder")

    page.get_by_label("Name").fill("Orders by channel")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Orders by channel")).to_be_visible()
    expect(page.locator("table.report-table tbody tr")).to_have_count(1)
