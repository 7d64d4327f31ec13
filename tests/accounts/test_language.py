"""Choosing the interface language: remembered on the account and in a cookie."""

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def switch(client, language, next_url="/customers/"):
    return client.post("/accounts/language/", {"language": language, "next": next_url})


def test_chinese_is_the_default_language(client):
    response = client.get("/accounts/login/")
    assert response["Content-Language"] == "zh-hans"
    content = response.content.decode()
    assert '<html lang="zh-hans"' in content
    assert "密码" in content  # Django's own label for the password field


def test_visitor_switches_to_english_and_the_next_page_is_english(client):
    response = switch(client, "en", "/accounts/login/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    page = client.get("/accounts/login/")
    assert page["Content-Language"] == "en"
    content = page.content.decode()
    assert '<html lang="en"' in content
    assert "Password" in content and "密码" not in content


def test_signed_in_user_switches_language_on_their_account(staff_client, staff):
    response = switch(staff_client, "en")
    staff.refresh_from_db()
    assert staff.language == "en"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert response["Location"] == "/customers/"
    page = staff_client.get("/customers/")
    assert page["Content-Language"] == "en"
    assert '<html lang="en"' in page.content.decode()


def test_chosen_language_follows_the_user_to_another_device(client, staff):
    switch_client = Client()
    switch_client.force_login(staff)
    switch(switch_client, "en")
    # A fresh browser without the cookie, signing in with the password.
    client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})
    page = client.get("/customers/")
    assert page["Content-Language"] == "en"
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies


def test_switching_back_to_chinese_serves_chinese(staff_client, staff):
    switch(staff_client, "en")
    switch(staff_client, "zh-hans")
    staff.refresh_from_db()
    assert staff.language == "zh-hans"
    response = staff_client.post("/customers/new/", {"email": "not-an-email"})
    assert response["Content-Language"] == "zh-hans"
    assert "输入一个有效的 Email 地址。" in response.content.decode()


@pytest.mark.parametrize("language", ["fr", "", "zh-hans<script>", "en" * 100])
def test_unknown_language_is_ignored(staff_client, staff, language):
    response = switch(staff_client, language)
    assert response.status_code == 302
    staff.refresh_from_db()
    assert staff.language == ""
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


@pytest.mark.parametrize(
    "unsafe",
    ["https://evil.example.com/", "//evil.example.com/", "javascript:alert(1)", "http:///evil"],
)
def test_language_switch_ignores_a_next_address_on_another_site(client, unsafe):
    response = switch(client, "en", unsafe)
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_language_switch_is_a_post(client):
    assert client.get("/accounts/language/?language=en").status_code == 405
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies


def test_every_page_has_the_language_switcher_with_the_current_page_as_next(staff_client):
    content = staff_client.get("/customers/?q=li").content.decode()
    assert 'action="/accounts/language/"' in content
    assert 'name="next" value="/customers/?q=li"' in content
