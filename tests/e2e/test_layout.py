import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

HAS_HORIZONTAL_SCROLLBAR = (
    "document.documentElement.scrollWidth > document.documentElement.clientWidth + 1"
)


def assert_fits_the_screen(page):
    assert not page.evaluate(HAS_HORIZONTAL_SCROLLBAR), (
        f"{page.url} scrolls sideways: {page.evaluate('document.documentElement.scrollWidth')} px"
        f" wide on a {page.viewport_size['width']} px screen"
    )


def assert_filters_stay_beside_the_results(page):
    """On a wide screen the filter column ends where the results begin, never over them."""
    results = page.locator("#results").bounding_box()
    filters_right = page.evaluate(
        "Math.max(...[...document.querySelectorAll('#list-form *')]"
        ".map((e) => e.getBoundingClientRect().right))"
    )
    if results["x"] > page.locator("#list-form").bounding_box()["x"]:  # side by side
        assert filters_right <= results["x"] + 1


# Chinese is what most users see; English words are longer and wrap less readily.
@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_customer_pages_fit_the_screen(staff_page, customers, screenshot, locale):
    """No page scrolls sideways, and the list and detail pages are saved as screenshots for
    people to look at."""
    page = staff_page
    zhang = customers["张伟"]

    page.goto("/customers/")
    expect(page.get_by_role("link", name="张伟")).to_be_visible()
    assert_fits_the_screen(page)
    assert_filters_stay_beside_the_results(page)
    if locale == "zh-CN":
        screenshot(page, "customer-list")

    page.goto(f"/customers/{zhang.pk}/")
    expect(page.get_by_role("heading", name="张伟", level=1)).to_be_visible()
    assert_fits_the_screen(page)
    if locale == "zh-CN":
        screenshot(page, "customer-detail")

    page.goto(f"/customers/{zhang.pk}/edit/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("张伟")
    assert_fits_the_screen(page)
