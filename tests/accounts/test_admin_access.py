"""The Django admin is for superusers only, not for every employee who can sign in."""

import urllib.parse

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

ADMIN_PAGES = ["/admin/", "/admin/customers/customer/", "/admin/accounts/user/"]


@pytest.fixture
def client_for(verified_login):
    # Past the second factor, which administrators and managers must pass.
    return lambda user: verified_login(Client(), user)


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_superuser_uses_the_admin(admin_user, path, client_for):
    response = client_for(admin_user).get(path)
    assert response.status_code == 200


def test_superuser_sees_the_admin_link(admin_user, client_for):
    content = client_for(admin_user).get("/customers/").content.decode()
    assert 'href="/admin/"' in content


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_employee_who_is_not_staff_gets_no_admin(staff, path, client_for):
    assert not staff.is_staff
    response = client_for(staff).get(path)
    assert response.status_code == 302
    assert urllib.parse.urlsplit(response["Location"]).path == "/admin/login/"


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_staff_flag_and_permissions_without_superuser_give_no_admin(manager, path, client_for):
    manager.is_staff = True
    manager.save()
    manager.user_permissions.set(
        Permission.objects.filter(codename__in=["view_customer", "view_user"])
    )
    response = client_for(manager).get(path)
    assert response.status_code == 302
    assert urllib.parse.urlsplit(response["Location"]).path == "/admin/login/"
    content = client_for(manager).get(response["Location"]).content.decode()
    assert "not authorized to access this page" in content


def test_non_superuser_does_not_see_the_admin_link(staff, client_for):
    content = client_for(staff).get("/customers/").content.decode()
    assert 'href="/admin/"' not in content


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_anonymous_visitor_gets_no_admin(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert urllib.parse.urlsplit(response["Location"]).path in ("/admin/login/", "/accounts/login/")


def test_admin_changes_refused_to_non_superuser(manager, customer, client_for):
    manager.is_staff = True
    manager.save()
    manager.user_permissions.set(Permission.objects.filter(codename="change_customer"))
    response = client_for(manager).post(
        f"/admin/customers/customer/{customer.pk}/change/", {"display_name": "Changed"}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.display_name == "张伟"
