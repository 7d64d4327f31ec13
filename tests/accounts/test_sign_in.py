"""Signing in and out."""

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.contrib.sessions.models import Session

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_sign_in_page_has_username_and_password_fields(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="username"' in content and 'name="password"' in content
    assert 'type="password"' in content


def test_staff_signs_in_and_lands_on_the_customer_list(client, staff):
    response = client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    assert client.get("/customers/").status_code == 200


def test_wrong_password_is_refused_with_a_message(client, staff):
    response = client.post("/accounts/login/", {"username": "staff", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()
    assert client.get("/customers/").status_code == 302


def test_deactivated_user_cannot_sign_in(client, outsider):
    response = client.post("/accounts/login/", {"username": "outsider", "password": PASSWORD})
    assert response.status_code == 200
    assert client.get("/customers/").status_code == 302


def test_sign_in_returns_to_the_page_asked_for(client, staff):
    response = client.post(
        "/accounts/login/?next=/customers/views/",
        {"username": "staff", "password": PASSWORD, "next": "/customers/views/"},
    )
    assert response["Location"] == "/customers/views/"


@pytest.mark.parametrize(
    "unsafe", ["https://evil.example.com/", "//evil.example.com/customers/", "javascript:alert(1)"]
)
def test_sign_in_ignores_a_next_address_on_another_site(client, staff, unsafe):
    response = client.post(
        "/accounts/login/", {"username": "staff", "password": PASSWORD, "next": unsafe}
    )
    assert response.status_code == 302
    assert response["Location"] == "/customers/"


def test_signed_in_user_opening_sign_in_goes_to_the_list(staff_client):
    response = staff_client.get("/accounts/login/")
    assert response.status_code == 302
    assert response["Location"] == "/customers/"


def test_sign_out_is_a_post(staff_client):
    assert staff_client.get("/accounts/logout/").status_code == 405
    assert staff_client.get("/customers/").status_code == 200


def test_signing_out_ends_the_session(staff_client):
    response = staff_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert staff_client.get("/customers/").status_code == 302


def test_every_page_offers_sign_out_as_a_form(staff_client):
    content = staff_client.get("/customers/").content.decode()
    assert '<form method="post" action="/accounts/logout/"' in content


def test_signing_in_gives_the_session_a_new_key(client, staff):
    client.get("/accounts/login/")
    session = client.session
    session["before"] = "sign-in"
    session.save()
    key_before = client.cookies[settings.SESSION_COOKIE_NAME].value

    client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})

    key_after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert key_after != key_before
    assert not Session.objects.filter(session_key=key_before).exists()


def test_sign_in_sends_django_signals_for_the_audit_trail(client, staff):
    received = []

    def remember(sender, **kwargs):
        received.append(kwargs.get("user") or kwargs["credentials"]["username"])

    user_login_failed.connect(remember, dispatch_uid="test-failed")
    user_logged_in.connect(remember, dispatch_uid="test-in")
    try:
        client.post("/accounts/login/", {"username": "staff", "password": "wrong"})
        client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})
    finally:
        user_login_failed.disconnect(dispatch_uid="test-failed")
        user_logged_in.disconnect(dispatch_uid="test-in")
    assert received == ["staff", staff]


def test_passwords_are_hashed_with_argon2(settings):
    from django.contrib.auth.hashers import get_hasher

    # The autouse fixture swaps in a fast hasher; the setting itself puts Argon2 first.
    from cims import settings as cims_settings

    assert cims_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    settings.PASSWORD_HASHERS = cims_settings.PASSWORD_HASHERS
    assert get_hasher().algorithm == "argon2"


def test_an_older_password_hash_is_upgraded_to_argon2_at_sign_in(client, settings, staff):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    staff.password = make_password(PASSWORD, hasher="md5")
    staff.save()

    client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})

    staff.refresh_from_db()
    assert staff.password.startswith("argon2$")
    assert staff.check_password(PASSWORD)


def test_the_admin_sign_in_form_leads_to_the_throttled_sign_in_page(client, admin_user):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"

    response = client.post("/admin/login/", {"username": "admin", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
