"""Quick entry in a real browser: entries made without a connection arrive once it returns."""

import importlib
import re
import time

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from intake.models import Submission

pytestmark = pytest.mark.e2e


@pytest.fixture
def quick_entry_form(transactional_db):
    migration = importlib.import_module("intake.migrations.0002_quick_entry_form")
    return migration.create_quick_entry_form(apps)


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def open_quick_entry(page):
    page.goto("/entry/")
    # Going offline while the browser still fetches the service worker makes it log an error.
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")


def enter(page, name, phone):
    page.locator("#id_name").fill(name)
    page.locator("#id_phone").fill(phone)
    # Enter sends the form, as on a phone's keyboard.
    page.locator("#id_phone").press("Enter")


def test_entries_made_offline_arrive_once_when_the_connection_returns(
    staff_page, context, quick_entry_form, staff, screenshot
):
    page = staff_page
    open_quick_entry(page)
    expect(page.locator("#id_name")).to_be_focused()
    expect(page.locator("[data-entry-where]")).to_have_attribute("open", "")
    page.locator("#id_entry-channel").select_option("expo")
    page.locator("#id_entry-event").fill("2026 上海车展")
    page.locator("#id_entry-event").dispatch_event("change")

    enter(page, "陈晨", "13700137000")
    expect(page.locator("[data-entry-status]")).to_have_text("Saved: 陈晨")
    expect(page.locator("#id_name")).to_have_value("")
    expect(page.locator("#id_name")).to_be_focused()

    context.set_offline(True)
    enter(page, "张伟", "13800138000")
    expect(page.locator("[data-entry-status]")).to_contain_text("Queued")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    page.locator("#id_name").fill("王芳")
    page.locator("#id_email").fill("wang.fang@example.com")
    page.locator("#id_email").press("Enter")
    expect(page.locator("[data-entry-status]")).to_contain_text("2 waiting")
    expect(page.locator("[data-entry-waiting]")).to_contain_text("2 waiting")
    screenshot(page, "quick-entry-offline")
    assert Submission.objects.count() == 1

    context.set_offline(False)
    assert wait_for(lambda: Submission.objects.count() == 3)
    expect(page.locator("[data-entry-queue]")).to_be_hidden()
    # Sent once each, whatever else happens: a retry, the page opened again.
    page.reload()
    page.wait_for_timeout(500)
    names = sorted(s.private_answers["name"] for s in Submission.objects.all())
    assert names == ["张伟", "王芳", "陈晨"]
    assert Submission.objects.values("client_key").distinct().count() == 3
    for submission in Submission.objects.all():
        assert submission.entered_by == staff
        assert (submission.channel, submission.event) == ("expo", "2026 上海车展")
    # The place is remembered on this device.
    expect(page.locator("[data-entry-where-text]")).to_have_text("Expo · 2026 上海车展")


def test_the_page_opens_again_without_a_connection(staff_page, context, quick_entry_form):
    page = staff_page
    open_quick_entry(page)
    # Loaded once under the worker's control, the page and its files are kept.
    page.reload()
    expect(page.locator("#id_name")).to_be_visible()
    context.set_offline(True)
    page.reload()
    expect(page.locator("#id_name")).to_be_visible()
    enter(page, "李娜", "13900139000")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    context.set_offline(False)
    assert wait_for(lambda: Submission.objects.count() == 1)
    assert Submission.objects.get().private_answers["name"] == "李娜"


def test_an_entry_the_server_refuses_waits_under_needs_attention(
    staff_page, context, quick_entry_form, page_problems
):
    page = staff_page
    open_quick_entry(page)
    context.set_offline(True)
    page.locator("#id_name").fill("赵敏")
    page.locator("#id_phone").fill("12345")
    page.locator("#id_phone").press("Enter")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    context.set_offline(False)
    attention = page.locator("[data-entry-attention]")
    expect(attention).to_be_visible()
    expect(attention).to_contain_text("赵敏")
    expect(attention).to_contain_text("Mobile phone: Enter a valid mobile number")
    # Correct it: the entry comes back into the form, and is sent with its key.
    attention.get_by_role("button", name="Correct").click()
    expect(page.locator("#id_name")).to_have_value("赵敏")
    page.locator("#id_phone").fill("13600136000")
    page.locator("#id_phone").press("Enter")
    expect(page.locator("[data-entry-status]")).to_have_text("Saved: 赵敏")
    expect(attention).to_be_hidden()
    assert Submission.objects.get().private_answers["phone"] == "+8613600136000"
    # The browser reports the refused request (400) as a failed load: expected here.
    page_problems[:] = [p for p in page_problems if "status of 400" not in p]


def test_without_javascript_the_page_is_a_plain_form(
    browser, device, live_server, client, staff, quick_entry_form
):
    from django.conf import settings

    from tests.e2e.conftest import DEVICES

    context = browser.new_context(
        **DEVICES[device], base_url=live_server.url, java_script_enabled=False, locale="en-US"
    )
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    try:
        page = context.new_page()
        page.goto("/entry/")
        page.locator("#id_name").fill("周杰")
        page.locator("#id_email").fill("zhou@example.com")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".messages")).to_contain_text("Saved: 周杰")
        assert Submission.objects.get().private_answers["email"] == "zhou@example.com"
    finally:
        context.close()


def test_an_entry_that_waited_through_a_new_csrf_token_still_arrives(
    staff_page, context, quick_entry_form, page_problems
):
    page = staff_page
    open_quick_entry(page)
    context.set_offline(True)
    enter(page, "孙丽", "13500135000")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    # While offline the token the page was given stops matching: the cookie is gone (a new
    # sign-in, cleared cookies). The first attempt is refused, the page fetches a fresh token
    # and sends the entry again.
    context.clear_cookies(name="csrftoken")
    context.set_offline(False)
    expect(page.locator("[data-entry-status]")).to_have_text("Saved: 孙丽")
    assert Submission.objects.get().private_answers["name"] == "孙丽"
    # The refused first attempt, which the browser reports as a failed load.
    assert any("status of 403" in problem for problem in page_problems)
    page_problems[:] = [p for p in page_problems if "status of 403" not in p]


def test_entries_waiting_on_the_device_are_limited(staff_page, context, quick_entry_form, settings):
    settings.INTAKE_QUICK_ENTRY_QUEUE_LIMIT = 1
    page = staff_page
    open_quick_entry(page)
    context.set_offline(True)
    enter(page, "钱多", "13300133000")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    enter(page, "吴用", "13200132000")
    expect(page.locator("[data-entry-status]")).to_contain_text("Too many entries are waiting")
    # Refused before anything was stored: what was typed stays in the form.
    expect(page.locator("#id_name")).to_have_value("吴用")
    context.set_offline(False)
    assert wait_for(lambda: Submission.objects.count() == 1)


def page_is_kept(page):
    return page.evaluate("caches.match('/entry/').then((copy) => Boolean(copy))")


def test_signing_out_removes_the_page_kept_for_offline_use(staff_page, quick_entry_form):
    page = staff_page
    open_quick_entry(page)
    assert page_is_kept(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    # The next user of the device cannot open the page, with its user's name, offline.
    assert not page_is_kept(page)


def test_the_page_of_a_session_that_ended_is_not_kept(staff_page, context, quick_entry_form):
    page = staff_page
    open_quick_entry(page)
    assert page_is_kept(page)
    context.clear_cookies(name=settings.SESSION_COOKIE_NAME)
    page.goto("/entry/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    assert not page_is_kept(page)


def test_entries_waiting_for_one_user_are_not_sent_with_another_users_session(
    staff_page, context, live_server, quick_entry_form, staff, staff2, page_problems
):
    page = staff_page
    open_quick_entry(page)
    context.set_offline(True)
    enter(page, "孙丽", "13500135000")
    expect(page.locator("[data-entry-status]")).to_contain_text("1 waiting")
    # Meanwhile another user signs in on this device (in another tab, say).
    other = Client()
    other.force_login(staff2)
    name = settings.SESSION_COOKIE_NAME
    (own_session,) = [c["value"] for c in context.cookies() if c["name"] == name]
    context.add_cookies(
        [{"name": name, "value": other.cookies[name].value, "url": live_server.url}]
    )
    context.set_offline(False)
    expect(page.locator("[data-entry-waiting]")).to_contain_text("signed out")
    assert not Submission.objects.exists()
    # Signed in again as the page's user, the entry goes out as theirs.
    context.add_cookies([{"name": name, "value": own_session, "url": live_server.url}])
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("[data-entry-status]")).to_have_text("Saved: 孙丽")
    assert Submission.objects.get().entered_by == staff
    page_problems[:] = [p for p in page_problems if "status of 409" not in p]
