import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

# Django's own Chinese date format ("2025年11月25日"): the page is Chinese whatever our own
# translations say.
CHINESE_DATE = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_language_switcher_changes_the_interface_language(staff_page, customers):
    page = staff_page
    page.goto(f"/customers/{customers['张伟'].pk}/")
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "zh-hans")
    # Found by its options, which keep their own names in every language.
    switcher = page.get_by_role("combobox").filter(has_text="English")

    switcher.select_option(label="English")

    expect(html).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    expect(page.get_by_role("main")).not_to_contain_text(CHINESE_DATE)
    expect(page.get_by_role("heading", name="张伟", level=1)).to_be_visible()

    switcher.select_option(label="简体中文")

    expect(html).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("main")).to_contain_text(CHINESE_DATE)
    expect(page.get_by_role("heading", name="张伟", level=1)).to_be_visible()


def test_theme_button_cycles_system_light_dark_and_is_remembered(staff_page):
    page = staff_page
    page.goto("/customers/")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "system")

    page.get_by_role("button", name="Theme follows the system").click()
    expect(html).to_have_attribute("data-theme", "light")
    expect(html).to_have_css("color-scheme", "light")

    page.get_by_role("button", name="Light theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(html).to_have_css("color-scheme", "dark")

    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(html).to_have_css("color-scheme", "dark")

    page.get_by_role("button", name="Dark theme").click()
    expect(html).to_have_attribute("data-theme", "system")
