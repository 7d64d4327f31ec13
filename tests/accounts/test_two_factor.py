"""Two-factor authentication: the code step, setting it up, recovery codes, turning it off."""

import re
import time

import pytest
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def code_for(device, steps_ahead=0):
    """The code the user's app shows now, or `steps_ahead` time steps later (a code can be used
    only once, so a test that signs in twice takes the next one the second time)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture(autouse=True)
def _no_device_backoff(settings):
    # django-otp makes a device wait 1, 2, 4 … seconds after each wrong code; tests that follow
    # a wrong code with the right one at once would be refused for that, not for the code.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


@pytest.fixture
def device(staff):
    """Staff (for whom two-factor authentication is optional) with it turned on."""
    return TOTPDevice.objects.create(user=staff, name="authenticator", confirmed=True)


@pytest.fixture
def recovery_codes(device):
    return two_factor.new_recovery_codes(device.user)


def enter_password(client, username="staff", next_url=None):
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


def enter_code(client, code):
    return client.post("/accounts/login/code/", {"code": code})


def signed_in(client):
    return client.get("/customers/").status_code == 200


# Signing in with a second factor


def test_password_alone_does_not_sign_in_a_user_with_two_factor(client, device):
    response = enter_password(client)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/code/"
    assert not signed_in(client)
    assert "_auth_user_id" not in client.session


def test_code_from_the_app_completes_sign_in(client, device):
    enter_password(client)
    response = enter_code(client, code_for(device))
    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    assert signed_in(client)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id


def test_code_step_returns_to_the_page_asked_for(client, device):
    enter_password(client, next_url="/customers/views/")
    assert enter_code(client, code_for(device))["Location"] == "/customers/views/"


def test_code_step_rotates_the_session_key(client, settings, device):
    enter_password(client)
    pending_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    enter_code(client, code_for(device))
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != pending_key


def test_wrong_code_is_refused(client, device):
    enter_password(client)
    response = enter_code(client, "000000" if code_for(device) != "000000" else "111111")
    assert response.status_code == 200
    assert "That code is not right." in response.content.decode()
    assert not signed_in(client)


def test_a_code_cannot_be_used_twice(client, device):
    code = code_for(device)
    enter_password(client)
    enter_code(client, code)
    client.post("/accounts/logout/")
    enter_password(client)
    assert enter_code(client, code).status_code == 200
    assert not signed_in(client)


def test_code_step_without_the_password_step_leads_to_sign_in(client, device):
    response = client.get("/accounts/login/code/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"


def test_code_step_expires_after_five_minutes(client, device):
    enter_password(client)
    session = client.session
    session[two_factor.PENDING_KEY]["since"] -= two_factor.PENDING_SIGN_IN_SECONDS + 1
    session.save()
    response = enter_code(client, code_for(device))
    assert response["Location"] == "/accounts/login/"
    assert not signed_in(client)


def test_code_step_refuses_a_user_deactivated_after_the_password(client, device, staff):
    enter_password(client)
    staff.is_active = False
    staff.save()
    assert enter_code(client, code_for(device))["Location"] == "/accounts/login/"


def test_sign_in_signals_fire_after_the_code_not_after_the_password(client, device, staff):
    received = []

    def remember(sender, **kwargs):
        received.append(kwargs.get("user") or kwargs["credentials"]["username"])

    user_logged_in.connect(remember, dispatch_uid="test-in")
    user_login_failed.connect(remember, dispatch_uid="test-failed")
    try:
        enter_password(client)
        assert received == []
        enter_code(client, "abcdefgh")
        assert received == ["staff"], "a wrong code is a failed sign-in for the audit trail"
        enter_code(client, code_for(device))
    finally:
        user_logged_in.disconnect(dispatch_uid="test-in")
        user_login_failed.disconnect(dispatch_uid="test-failed")
    assert received == ["staff", staff]


# Throttling the code step


def test_five_wrong_codes_lock_the_account(client, device, lockouts):
    enter_password(client)
    for _ in range(4):
        assert enter_code(client, "abcdefgh").status_code == 200
    response = enter_code(client, "abcdefgh")
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert enter_code(client, code_for(device)).status_code == 429
    assert not signed_in(client)
    assert lockouts == ["staff"]


def test_entering_the_password_again_does_not_reset_the_code_count(client, device):
    enter_password(client)
    for _ in range(4):
        enter_code(client, "abcdefgh")
    assert enter_password(client).status_code == 302
    assert enter_code(client, "abcdefgh").status_code == 429


def test_wrong_codes_and_wrong_passwords_count_together(client, device):
    for _ in range(2):
        client.post("/accounts/login/", {"username": "staff", "password": "wrong"})
    enter_password(client)
    for _ in range(2):
        enter_code(client, "abcdefgh")
    assert enter_code(client, "abcdefgh").status_code == 429


def test_code_step_is_refused_with_a_message_while_redis_is_down(client, settings, device):
    from django.test import override_settings

    enter_password(client)
    pending = client.session[two_factor.PENDING_KEY]
    dead = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    with override_settings(CACHES=dead):
        # The session itself is still read from the database.
        session = client.session
        assert session.get(two_factor.PENDING_KEY) == pending
        response = enter_code(client, code_for(device))
    assert response.status_code == 503
    assert "Signing in is not possible at the moment." in response.content.decode()


# Recovery codes


def test_a_recovery_code_signs_in_once(client, device, recovery_codes):
    enter_password(client)
    response = enter_code(client, recovery_codes[0].upper())
    assert response.status_code == 302
    page = client.get("/customers/")
    assert page.status_code == 200
    assert "You used a recovery code; 9 are left." in page.content.decode()

    client.post("/accounts/logout/")
    enter_password(client)
    assert enter_code(client, recovery_codes[0]).status_code == 200
    assert not signed_in(client)


def test_recovery_codes_of_another_user_do_not_work(client, device, staff2):
    others = two_factor.new_recovery_codes(staff2)
    enter_password(client)
    assert enter_code(client, others[0]).status_code == 200
    assert not signed_in(client)


# Who must use two-factor authentication


def test_staff_without_two_factor_signs_in_with_the_password(client, staff):
    assert enter_password(client)["Location"] == "/customers/"
    assert signed_in(client)


def test_manager_without_two_factor_must_set_it_up_before_anything_else(client, manager):
    assert enter_password(client, "manager")["Location"] == "/customers/"

    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/two-factor/"
    assert client.get("/accounts/security/").status_code == 302
    assert client.get("/accounts/security/two-factor/").status_code == 200

    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/"


def test_administrator_without_two_factor_cannot_open_the_admin(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/admin/")
    assert response["Location"] == "/accounts/security/two-factor/"


def test_session_that_skipped_the_code_step_is_ended(client, device, staff):
    # For example a session begun before two-factor authentication was turned on elsewhere.
    client.force_login(staff)
    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_verified_login_fixture_lets_a_manager_in(client, manager, verified_login):
    verified_login(client, manager)
    assert client.get("/customers/").status_code == 200


def test_manager_client_and_admin_client_fixtures_are_verified(manager_client, admin_client):
    assert manager_client.get("/customers/").status_code == 200
    assert admin_client.get("/admin/").status_code == 200


# Setting it up


def secret_on(response):
    return re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', response.content.decode())[1]


def test_set_up_page_shows_a_qr_code_and_the_key_without_inline_code(client, staff):
    client.force_login(staff)
    response = client.get("/accounts/security/two-factor/")
    assert response.status_code == 200
    content = response.content.decode()
    assert '<svg class="qr-code" role="img"' in content
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    assert secret_on(response).replace(" ", "") == two_factor.secret(device).replace(" ", "")
    # The Content Security Policy allows no inline styles, nor scripts without the nonce.
    assert "style=" not in content and "<style" not in content
    assert "<script>" not in content
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"], "the key is not kept in any cache"


def test_set_up_keeps_its_key_when_the_page_is_reloaded(client, staff):
    client.force_login(staff)
    first = secret_on(client.get("/accounts/security/two-factor/"))
    assert secret_on(client.get("/accounts/security/two-factor/")) == first


def test_set_up_with_the_right_code_turns_it_on_and_shows_ten_recovery_codes_once(client, staff):
    client.force_login(staff)
    client.get("/accounts/security/two-factor/")
    device = TOTPDevice.objects.get(user=staff, confirmed=False)

    response = client.post("/accounts/security/two-factor/", {"code": code_for(device)})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/recovery-codes/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id

    page = client.get("/accounts/security/recovery-codes/")
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", page.content.decode())
    assert len(codes) == 10
    assert set(codes) == set(StaticToken.objects.values_list("token", flat=True))
    assert client.get("/accounts/security/recovery-codes/").status_code == 302, "shown once"
    assert signed_in(client)


def test_set_up_with_a_wrong_code_is_refused(client, staff):
    client.force_login(staff)
    client.get("/accounts/security/two-factor/")
    response = client.post("/accounts/security/two-factor/", {"code": "12345"})
    assert response.status_code == 200
    assert "That code is not right." in response.content.decode()
    assert not two_factor.is_enabled(staff)


def test_manager_sets_it_up_and_can_then_work(client, manager):
    enter_password(client, "manager")
    client.get("/accounts/security/two-factor/")
    device = TOTPDevice.objects.get(user=manager, confirmed=False)
    client.post("/accounts/security/two-factor/", {"code": code_for(device)})
    assert client.get("/customers/").status_code == 200

    client.post("/accounts/logout/")
    assert enter_password(client, "manager")["Location"] == "/accounts/login/code/"
    enter_code(client, code_for(device, steps_ahead=1))
    assert client.get("/customers/").status_code == 200


def test_setting_it_up_ends_the_users_other_sessions(client, staff):
    from django.test import Client

    other = Client()
    other.post("/accounts/login/", {"username": "staff", "password": PASSWORD})
    assert other.get("/customers/").status_code == 200

    client.force_login(staff)
    client.get("/accounts/security/two-factor/")
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    client.post("/accounts/security/two-factor/", {"code": code_for(device)})

    assert other.get("/customers/").status_code == 302
    assert client.get("/customers/").status_code == 200


def test_set_up_page_sends_users_who_have_it_to_the_security_page(client, device, staff):
    enter_password(client)
    enter_code(client, code_for(device))
    response = client.get("/accounts/security/two-factor/")
    assert response["Location"] == "/accounts/security/"


def test_set_up_is_for_signed_in_users_only(client):
    response = client.get("/accounts/security/two-factor/")
    assert response["Location"].startswith("/accounts/login/")


# Recovery codes and turning it off


def signed_in_with_code(client, device):
    enter_password(client, device.user.username)
    enter_code(client, code_for(device))
    return client


def test_new_recovery_codes_replace_the_old_ones(client, device, recovery_codes):
    signed_in_with_code(client, device)
    response = client.post("/accounts/security/recovery-codes/")
    assert response["Location"] == "/accounts/security/recovery-codes/"
    content = client.get("/accounts/security/recovery-codes/").content.decode()
    new_codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", content)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(recovery_codes)
    assert two_factor.recovery_codes_left(device.user) == 10


def test_recovery_codes_need_a_session_that_passed_the_second_factor(client, staff):
    client.force_login(staff)
    response = client.post("/accounts/security/recovery-codes/")
    assert response["Location"] == "/accounts/security/"
    assert not StaticToken.objects.exists()


def test_recovery_codes_page_refuses_other_methods(client, device):
    signed_in_with_code(client, device)
    assert client.put("/accounts/security/recovery-codes/").status_code == 405


def test_staff_turns_it_off_with_the_password(client, device, recovery_codes, staff):
    signed_in_with_code(client, device)
    assert "Turn off" in client.get("/accounts/security/").content.decode()
    response = client.post("/accounts/security/two-factor/off/", {"password": PASSWORD})
    assert response["Location"] == "/accounts/security/"
    assert not two_factor.is_enabled(staff)
    assert not StaticToken.objects.filter(device__user=staff).exists()
    assert signed_in(client)


def test_turning_it_off_needs_the_right_password(client, device, staff):
    signed_in_with_code(client, device)
    response = client.post("/accounts/security/two-factor/off/", {"password": "wrong"})
    assert response.status_code == 200
    assert two_factor.is_enabled(staff)


def test_manager_cannot_turn_it_off(manager_client, manager):
    assert "Turn off" not in manager_client.get("/accounts/security/").content.decode()
    response = manager_client.post("/accounts/security/two-factor/off/", {"password": PASSWORD})
    assert response.status_code == 403
    assert two_factor.is_enabled(manager)


def test_turning_it_off_refuses_other_methods(client, device):
    signed_in_with_code(client, device)
    assert client.put("/accounts/security/two-factor/off/").status_code == 405


def test_deactivated_user_cannot_turn_it_off(client, outsider):
    TOTPDevice.objects.create(user=outsider, name="authenticator", confirmed=True)
    client.force_login(outsider)
    response = client.post("/accounts/security/two-factor/off/", {"password": PASSWORD})
    assert response["Location"].startswith("/accounts/login/")
    assert two_factor.is_enabled(outsider)


def test_a_superuser_without_a_role_must_set_up_two_factor(client, db):
    from tests.conftest import make_user

    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/security/two-factor/")
