import re

import pytest
from playwright.sync_api import expect

from customers.models import Customer

pytestmark = pytest.mark.e2e


def test_staff_opens_a_customer_and_edits_company_and_tags(staff_page, customers):
    page = staff_page
    page.goto("/customers/")
    page.get_by_role("link", name="张伟").click()

    expect(page.get_by_role("heading", name="张伟", level=1)).to_be_visible()
    expect(page.get_by_text("138****8000", exact=True)).to_be_visible()
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.get_by_text("Asked about the spring catalogue")).to_be_visible()
    expect(timeline.get_by_text(re.compile(r"Order SO-1001"))).to_be_visible()

    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Company").fill("苏州新星电子有限公司")
    tags = page.get_by_label("Tags")
    expect(tags).to_have_value("vip")
    tags.fill("gold")
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_role("status")).to_have_text("Changes to 张伟 saved.")
    expect(page.get_by_role("heading", name="张伟", level=1)).to_be_visible()
    head = page.locator(".page-head")
    expect(head.get_by_text("苏州新星电子有限公司", exact=True)).to_be_visible()
    expect(head.get_by_text("gold", exact=True)).to_be_visible()
    expect(head.get_by_text("vip", exact=True)).to_have_count(0)
    # The change is in the customer's history, with what was there before.
    history = page.get_by_role("region", name="Change history")
    change = history.get_by_role("row").filter(has_text=re.compile("company", re.I))
    expect(change).to_contain_text("上海华东贸易有限公司")
    expect(change).to_contain_text("苏州新星电子有限公司")
    saved = Customer.objects.get(pk=customers["张伟"].pk)
    assert (saved.company, saved.tags) == ("苏州新星电子有限公司", ["gold"])


def test_invalid_phone_is_refused_beside_the_field(staff_page, customers):
    page = staff_page
    before = Customer.objects.get(pk=customers["张伟"].pk)
    page.goto(f"/customers/{before.pk}/edit/")

    page.get_by_label("Mobile phone").fill("12345")
    page.get_by_label("Company").fill("Not saved Ltd")
    page.get_by_role("button", name="Save changes").click()

    phone = page.get_by_label("Mobile phone")
    error = page.get_by_text("Enter a valid mobile number")
    expect(error).to_be_visible()
    expect(phone).to_have_attribute("aria-invalid", "true")
    expect(phone).to_have_value("12345")
    # "Beside" as a reader sees it: just below the input, within the same column.
    field, message = phone.bounding_box(), error.bounding_box()
    assert field["x"] <= message["x"] < field["x"] + field["width"]
    assert 0 <= message["y"] - (field["y"] + field["height"]) < 80
    after = Customer.objects.get(pk=before.pk)
    assert (after.phone, after.company, after.version) == (
        before.phone,
        before.company,
        before.version,
    )
