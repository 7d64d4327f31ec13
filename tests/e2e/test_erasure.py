"""Erasing a customer in the browser: the confirmation asks for the name, then the tombstone."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers.erasure import ERASED_NAME
from customers.models import Customer, Erasure


@pytest.fixture(autouse=True)
def _ledger_in_a_temporary_file(settings, tmp_path):
    settings.ERASURE_LEDGER_PATH = tmp_path / "ledger.jsonl"


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_erases_a_customer_after_typing_their_name(
    manager_page, customers, screenshot, page_problems
):
    zhang = customers["张伟"]
    page = manager_page

    page.goto(zhang.get_absolute_url())
    page.get_by_role("link", name="Erase…").click()
    expect(page.get_by_role("heading", name="Erase 张伟's personal data?")).to_be_visible()
    page.get_by_label("Reason").select_option("request")
    page.get_by_label("Type the customer's name to confirm").fill("张")
    screenshot(page, "erase-confirm")
    page.get_by_role("button", name="Erase personal data").click()

    expect(page.locator(".alert-error")).to_be_visible()
    expect(page.get_by_text("The name you typed does not match")).to_be_visible()
    assert not Erasure.objects.exists()
    # The browser reports the refused form (400) as a failed load: expected here.
    assert any("status of 400" in problem for problem in page_problems)
    page_problems[:] = [p for p in page_problems if "status of 400" not in p]

    page.get_by_label("Type the customer's name to confirm").fill("张伟")
    page.get_by_role("button", name="Erase personal data").click()

    expect(page.locator(".erased-note")).to_contain_text("personal data was erased")
    expect(page.get_by_role("heading", name=ERASED_NAME)).to_be_visible()
    expect(page.get_by_role("link", name="Erase…")).to_have_count(0)
    screenshot(page, "erase-done")
    assert Customer.objects.get(pk=zhang.pk).display_name == ERASED_NAME


def test_manager_erases_an_archived_customer_who_stays_in_the_archive(
    manager_page, customers, screenshot
):
    from customers import archiving
    from customers.models import ArchivedCustomer

    li = customers["李娜"]
    archiving.archive_customers([li.pk])
    page = manager_page

    page.goto(ArchivedCustomer.objects.get(pk=li.pk).get_absolute_url())
    page.get_by_role("link", name="Erase personal data").click()
    expect(page.get_by_role("heading", name="Erase 李娜's personal data?")).to_be_visible()
    page.get_by_label("Reason").select_option("request")
    page.get_by_label("Type the customer's name to confirm").fill("李娜")
    page.get_by_role("button", name="Erase personal data").click()

    expect(page.locator(".erased-note")).to_contain_text("personal data was erased")
    expect(page.get_by_role("heading", level=1)).to_contain_text(ERASED_NAME)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Archived")
    expect(page.get_by_role("link", name="Erase personal data")).to_have_count(0)
    page.set_viewport_size({"width": 375, "height": 800})
    screenshot(page, "erase-archived-done")
    assert ArchivedCustomer.objects.get(pk=li.pk).display_name == ERASED_NAME
    assert not Customer.objects.filter(pk=li.pk).exists()
