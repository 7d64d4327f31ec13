"""Signing in safely in the browser: lockout, the code step, recovery codes, setting it up."""

import re
import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts import two_factor
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


def app_code(key, steps_ahead=0):
    """What an authenticator app shows for the binary `key`."""
    totp = TOTP(key)
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def enter_password(page, username, password=PASSWORD):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def expect_refusals(context, page_problems):
    """The browser reports a page sent with an error status (429) as a console error; those
    are what the test expects, so they are taken off the list of problems afterwards."""
    yield
    page_problems[:] = [p for p in page_problems if "status of 429" not in p]


@pytest.mark.usefixtures("expect_refusals")
def test_five_wrong_passwords_lock_the_account_with_a_message(page, staff):
    page.goto("/accounts/login/")
    for _ in range(4):
        enter_password(page, "staff", "not-the-password")
        expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username")

    enter_password(page, "staff", "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text(
        "Too many failed attempts. Signing in is paused for 15 minutes."
    )

    enter_password(page, "staff")
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_sign_in_with_a_code_from_the_app(page, staff):
    device = TOTPDevice.objects.create(user=staff, name="authenticator", confirmed=True)
    page.goto("/accounts/login/")
    enter_password(page, "staff")

    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code").fill(app_code(device.bin_key))
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()


def test_sign_in_with_a_recovery_code_when_the_phone_is_lost(page, staff):
    TOTPDevice.objects.create(user=staff, name="authenticator", confirmed=True)
    codes = two_factor.new_recovery_codes(staff)
    page.goto("/accounts/login/")
    enter_password(page, "staff")

    page.get_by_label("Code").fill(codes[3])
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_role("status")).to_contain_text("You used a recovery code; 9 are left.")


def test_manager_sets_up_two_factor_at_first_sign_in(page, manager, screenshot):
    page.goto("/accounts/login/")
    enter_password(page, "manager")

    expect(page).to_have_url(re.compile(r"/accounts/security/two-factor/$"))
    expect(page.get_by_role("status")).to_contain_text("Your role requires two-factor")
    qr_code = page.get_by_role("img").and_(page.locator("svg.qr-code"))
    expect(qr_code).to_be_visible()
    box = qr_code.bounding_box()
    assert box["width"] >= 150 and box["height"] >= 150, "large enough to scan"
    screenshot(page, "two-factor-setup")

    # Typed into the app instead of scanned: the key shown as text.
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(app_code(b32decode(secret)))
    page.get_by_role("button", name="Turn on").click()

    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("ol.recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("You have 10 unused recovery codes.")

    page.goto("/customers/")
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()


def test_manager_cannot_leave_the_set_up_page_before_finishing(page, manager):
    page.goto("/accounts/login/")
    enter_password(page, "manager")
    expect(page).to_have_url(re.compile(r"/accounts/security/two-factor/$"))

    page.goto("/customers/")
    expect(page).to_have_url(re.compile(r"/accounts/security/two-factor/$"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
