import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers.models import Customer
from tests.customers.import_helpers import csv_bytes, media  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

ROWS = [
    ["王芳", "139 0013 9000", "wang@example.com", "1990/1/2", "星光科技", "Lead", "女", "", "VIP", "C1"],  # noqa: E501
    ["李娜", "13700137000", "", "", "", "", "", "", "", "C2"],
    ["赵六", "12345", "", "", "", "", "", "", "", "C3"],
]  # fmt: skip


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_uploads_maps_checks_and_imports_a_file(
    manager_page, celery_worker, tmp_path, screenshot
):
    page = manager_page
    path = tmp_path / "客户.csv"
    path.write_bytes(csv_bytes(ROWS))
    page.goto("/customers/")
    page.get_by_role("link", name="Import", exact=True).click()

    page.get_by_label("File").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name=re.compile("Columns of"))).to_be_visible()
    expect(page.get_by_label("手机")).to_have_value("phone")
    expect(page.get_by_label("姓名")).to_have_value("display_name")
    screenshot(page, "import-mapping")
    page.get_by_role("button", name="Check the file").click()

    expect(page.get_by_role("heading", name="What the import will do")).to_be_visible(
        timeout=30_000
    )
    problems = page.get_by_role("region", name=re.compile("problem"))
    expect(problems.get_by_role("cell", name="Not a valid phone number.")).to_be_visible()
    expect(page.get_by_role("region", name="First rows as they will be stored")).to_contain_text(
        "王芳"
    )
    screenshot(page, "import-preview")
    assert not Customer.objects.exists()
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.get_by_role("heading", name="Summary")).to_be_visible(timeout=30_000)
    expect(page.locator(".import-counts")).to_contain_text("2")
    expect(page.get_by_role("link", name="Revert this import")).to_be_visible()
    screenshot(page, "import-summary")
    assert Customer.objects.count() == 2
    assert Customer.objects.get(external_id="C1").phone == "+8613900139000"
