"""Throttling sign-in attempts per account and per address, and what passwords must be."""

import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import override_settings

from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

LOCKED = "Too many failed attempts. Signing in is paused for 15 minutes."
WRONG = "Please enter a correct username and password."
UNAVAILABLE = "Signing in is not possible at the moment."


def sign_in(client, username, password, address="198.51.100.7", **headers):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        headers=headers,
    )


def signed_in(client):
    return client.get("/customers/").status_code == 200


def test_fifth_wrong_password_locks_the_account_for_fifteen_minutes(client, staff, lockouts):
    for _ in range(4):
        response = sign_in(client, "staff", "wrong")
        assert response.status_code == 200
        assert WRONG in response.content.decode()

    response = sign_in(client, "staff", "wrong")
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert lockouts == ["staff"]

    response = sign_in(client, "staff", PASSWORD)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert not signed_in(client)
    assert lockouts == ["staff"], "the signal is sent when a lockout starts, not on each refusal"


def test_locked_account_stays_locked_from_another_address(client, staff):
    for _ in range(5):
        sign_in(client, "staff", "wrong", address="198.51.100.7")
    assert sign_in(client, "staff", PASSWORD, address="203.0.113.9").status_code == 429


def test_other_accounts_still_sign_in_while_one_is_locked(client, staff, staff2):
    for _ in range(5):
        sign_in(client, "staff", "wrong")
    assert sign_in(client, "staff2", PASSWORD).status_code == 302


def test_unknown_usernames_lock_like_real_ones(client, lockouts):
    for _ in range(5):
        response = sign_in(client, "nobody", "wrong")
    assert response.status_code == 429
    assert lockouts == ["nobody"]


def test_case_variants_of_a_username_share_one_count(client, staff):
    for username in ["staff", "STAFF", "Staff", "sTaff", "ｓｔａｆｆ"]:
        sign_in(client, username, "wrong")
    assert sign_in(client, "staff", PASSWORD).status_code == 429


def test_lockout_ends_after_the_lockout_time(client, settings, staff):
    settings.LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(5):
        sign_in(client, "staff", "wrong")
    assert sign_in(client, "staff", PASSWORD).status_code == 429
    time.sleep(1.2)
    assert sign_in(client, "staff", PASSWORD).status_code == 302


def test_signing_in_forgets_the_accounts_earlier_failures(client, staff):
    for _ in range(4):
        sign_in(client, "staff", "wrong")
    assert sign_in(client, "staff", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(4):
        assert sign_in(client, "staff", "wrong").status_code == 200
    assert sign_in(client, "staff", PASSWORD).status_code == 302


def test_twenty_failures_from_one_address_block_it_for_every_account(client, staff, lockouts):
    for number in range(20):
        response = sign_in(client, f"guess{number % 5}", "wrong")
    assert response.status_code == 429
    assert lockouts == ["guess4"]

    assert sign_in(client, "staff", PASSWORD).status_code == 429
    assert sign_in(client, "staff", PASSWORD, address="203.0.113.9").status_code == 302


def test_a_successful_sign_in_does_not_clear_the_address_count(client, staff):
    for number in range(19):
        sign_in(client, f"guess{number % 5}", "wrong")
    assert sign_in(client, "staff", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    assert sign_in(client, "guess4", "wrong").status_code == 429


def test_a_forged_forwarded_for_header_does_not_escape_an_address_block(client, staff):
    for number in range(20):
        sign_in(client, f"guess{number % 5}", "wrong", x_forwarded_for=f"10.0.0.{number}")
    response = sign_in(client, "staff", PASSWORD, x_forwarded_for="192.0.2.200")
    assert response.status_code == 429


def test_behind_a_trusted_proxy_the_address_it_saw_is_counted(client, settings, staff):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for number in range(20):
        # Whatever the client put first in the header is ignored; the proxy appended the last.
        sign_in(
            client,
            f"guess{number % 5}",
            "wrong",
            address=proxy,
            x_forwarded_for=f"192.0.2.{number}, 198.51.100.7",
        )
    blocked = sign_in(client, "staff", PASSWORD, address=proxy, x_forwarded_for="198.51.100.7")
    assert blocked.status_code == 429
    other = sign_in(client, "staff", PASSWORD, address=proxy, x_forwarded_for="203.0.113.9")
    assert other.status_code == 302


def test_an_ipv6_network_counts_as_one_address(client, staff):
    for number in range(20):
        sign_in(client, f"guess{number % 5}", "wrong", address=f"2001:db8:1:2::{number + 1:x}")
    assert sign_in(client, "staff", PASSWORD, address="2001:db8:1:2::ffff").status_code == 429
    assert sign_in(client, "staff", PASSWORD, address="2001:db8:1:3::1").status_code == 302


def test_limits_come_from_settings(client, settings, staff):
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 2
    sign_in(client, "staff", "wrong")
    assert sign_in(client, "staff", "wrong").status_code == 429


@pytest.fixture
def redis_down(settings, staff):
    # A port nothing listens on: every cache call fails at once with a connection error. The
    # personas are created before, and the cache is back before the fixtures' own clean-up.
    dead = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    with override_settings(CACHES=dead):
        yield


@pytest.mark.usefixtures("redis_down")
def test_sign_in_is_refused_with_a_message_while_redis_is_down(client, settings, staff):
    """Fail closed: without its counts the throttle cannot stop password guessing."""
    response = sign_in(client, "staff", PASSWORD)
    assert response.status_code == 503
    assert UNAVAILABLE in response.content.decode()
    assert settings.SESSION_COOKIE_NAME not in response.cookies, "no session was started"


@pytest.mark.usefixtures("redis_down")
def test_wrong_password_while_redis_is_down_is_not_a_server_error(client, staff):
    response = sign_in(client, "staff", "wrong")
    assert response.status_code == 503
    assert UNAVAILABLE in response.content.decode()


# Passwords


@pytest.mark.parametrize("password", ["short-pw-1", "password1234", "123456789012345"])
def test_weak_passwords_are_refused(staff, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=staff)


def test_a_long_uncommon_password_is_accepted(staff):
    validate_password("teapot-orbit-lantern-9", user=staff)


def test_password_change_page_changes_the_password(client, staff):
    client.force_login(staff)
    response = client.post(
        "/accounts/security/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "teapot-orbit-lantern-9",
            "new_password2": "teapot-orbit-lantern-9",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/"
    staff.refresh_from_db()
    assert staff.check_password("teapot-orbit-lantern-9")
    assert "Your password was changed" in client.get("/accounts/security/").content.decode()


def test_password_change_needs_the_old_password(client, staff):
    client.force_login(staff)
    response = client.post(
        "/accounts/security/password/",
        {
            "old_password": "wrong",
            "new_password1": "teapot-orbit-lantern-9",
            "new_password2": "teapot-orbit-lantern-9",
        },
    )
    assert response.status_code == 200
    staff.refresh_from_db()
    assert staff.check_password(PASSWORD)


def test_password_change_refuses_a_short_password(client, staff):
    client.force_login(staff)
    response = client.post(
        "/accounts/security/password/",
        {"old_password": PASSWORD, "new_password1": "Tea-pot-9", "new_password2": "Tea-pot-9"},
    )
    assert response.status_code == 200
    assert "at least 12 characters" in response.content.decode()


def test_password_change_page_is_for_signed_in_users_only(client):
    response = client.get("/accounts/security/password/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_password_change_refuses_other_methods(client, staff):
    client.force_login(staff)
    assert client.put("/accounts/security/password/").status_code == 405


def test_deactivated_user_cannot_change_a_password(client):
    outsider = make_user("former", is_active=False)
    client.force_login(outsider)
    response = client.post(
        "/accounts/security/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "teapot-orbit-lantern-9",
            "new_password2": "teapot-orbit-lantern-9",
        },
    )
    assert response.status_code == 302
    outsider.refresh_from_db()
    assert outsider.check_password(PASSWORD)
