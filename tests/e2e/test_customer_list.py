import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("query", ["zhang wei", "zw"])
def test_typing_pinyin_finds_the_chinese_name_without_pressing_search(staff_page, customers, query):
    page = staff_page
    page.goto("/customers/")
    expect(page.get_by_role("link", name="王芳")).to_be_visible()

    page.get_by_role("searchbox").fill(query)

    expect(page.get_by_role("link", name="王芳")).to_have_count(0)
    expect(page.get_by_role("link", name="李娜")).to_have_count(0)
    expect(page.get_by_role("link", name="张伟")).to_be_visible()
    expect(page.get_by_text("1 customer", exact=True)).to_be_visible()


def test_filtering_by_status_shows_only_matching_customers(staff_page, customers, device):
    page = staff_page
    page.goto("/customers/")
    lead = page.get_by_label("Lead", exact=True)
    if device == "phone":
        # Phones fold the filters away so that the results come first.
        expect(lead).to_be_hidden()
        page.get_by_text("Filters", exact=True).click()
    expect(lead).to_be_visible()

    lead.check()
    page.get_by_role("button", name="Apply").click()

    expect(page.get_by_text("1 customer", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="王芳")).to_be_visible()
    expect(page.get_by_role("link", name="张伟")).to_have_count(0)
    expect(page.get_by_role("link", name="李娜")).to_have_count(0)
