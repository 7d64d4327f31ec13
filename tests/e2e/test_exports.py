"""Exporting the customer list in the browser: at once when small, in the background when large."""

import csv
import io
import re

import openpyxl
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


def test_manager_downloads_the_filtered_list_as_excel(manager_page, customers, screenshot):
    page = manager_page
    page.goto("/customers/?status=lead")
    screenshot(page, "export-links")
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel", exact=True).click()
    assert download.value.suggested_filename.endswith(".xlsx")
    with open(download.value.path(), "rb") as downloaded:
        sheet = openpyxl.load_workbook(io.BytesIO(downloaded.read())).worksheets[0]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["王芳"]


def test_a_large_export_is_made_in_the_background_and_downloaded(
    manager_page, customers, celery_worker, settings, screenshot
):
    settings.EXPORT_SYNC_MAX_ROWS = 1
    page = manager_page
    page.goto("/customers/?sort=name")
    page.get_by_role("link", name="CSV", exact=True).click()
    expect(page.get_by_text(re.compile("This list has 3 customers"))).to_be_visible()
    page.get_by_role("button", name="Make the CSV file").click()

    # The progress page polls until the file is ready.
    expect(page.locator("[data-status]")).to_contain_text("Ready: 3 rows", timeout=30_000)
    screenshot(page, "export-ready")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    with open(download.value.path(), "rb") as downloaded:
        content = downloaded.read()
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert sorted(row[0] for row in rows[1:]) == ["张伟", "李娜", "王芳"]

    page.goto("/reports/files/")
    files = page.locator("#files")
    expect(files.get_by_role("link", name="Customers")).to_be_visible()
    expect(files.get_by_role("cell", name="3", exact=True)).to_be_visible()
    expect(files.get_by_role("link", name="Download")).to_be_visible()
