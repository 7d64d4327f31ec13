"""Merging duplicate customers in the browser, and undoing the merge."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers import duplicates
from customers.models import Customer, Order


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_merges_a_pair_choosing_values_and_undoes_it(
    manager_page, customers, staff, teams, screenshot
):
    zhang = customers["张伟"]
    twin = Customer.objects.create(
        display_name="章伟",
        family_name="章",
        given_name="伟",
        email="zw@example.org",
        company=zhang.company,
        city=zhang.city,
        owner=staff,
        team=teams[0],
    )
    Order.objects.create(customer=twin, external_id="SO-2002", amount="99.00")
    duplicates.refresh_candidates()
    page = manager_page

    page.goto("/customers/")
    page.get_by_role("link", name="Duplicates").click()
    pair = page.locator(".pair").filter(has_text="章伟")
    expect(pair).to_contain_text("Same company")
    screenshot(page, "duplicates-list")
    pair.get_by_role("link", name="Compare and merge").click()

    expect(page.get_by_role("heading", name="Merge customers")).to_be_visible()
    # 张伟 was created first (A) and is kept; the email comes from 章伟 (B).
    page.locator("input[name='take_email'][value='b']").check()
    screenshot(page, "merge-choices")
    page.get_by_role("button", name="Merge", exact=True).click()

    expect(page.get_by_role("heading", name="章伟 merged into 张伟")).to_be_visible()
    assert not Customer.objects.filter(pk=twin.pk).exists()
    kept = Customer.objects.get(pk=zhang.pk)
    assert kept.email == "zw@example.org" and kept.orders.count() == 2

    screenshot(page, "merge-done")
    page.get_by_role("link", name="张伟").first.click()
    expect(page.locator(".customer-duplicates")).to_contain_text("章伟 was merged in")
    screenshot(page, "merge-survivor")
    page.get_by_role("link", name="Undo…").click()
    page.get_by_role("button", name="Undo merge").click()

    expect(page.get_by_role("heading", name="章伟")).to_be_visible()
    expect(page.locator(".message-success")).to_contain_text("The merge was undone")
    assert Customer.objects.get(pk=twin.pk).email == "zw@example.org"
    assert Customer.objects.get(pk=zhang.pk).email == "zhang.wei@example.com"
    assert Order.objects.get(external_id="SO-2002").customer_id == twin.pk
