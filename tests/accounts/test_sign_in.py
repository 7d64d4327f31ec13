"""Signing in and out."""

import pytest

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
