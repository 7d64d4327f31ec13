"""Saved views: a user's named search, filters and sort of the customer list."""

import urllib.parse

import pytest
from django.contrib.messages import get_messages

from customers.models import SavedView

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

QUERY = "q=%E5%BC%A0&status=active&tags=vip&sort=name"


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def saved(staff):
    return SavedView.objects.create(user=staff, name="上海 VIP", query=QUERY)


def test_staff_saves_the_current_query_under_a_name(staff_client, staff):
    response = staff_client.post("/customers/views/new/", {"name": " Active VIPs ", "query": QUERY})
    view = SavedView.objects.get()
    assert (view.user, view.name, view.query) == (staff, "Active VIPs", QUERY)
    assert response.status_code == 302
    assert response["Location"] == f"/customers/?{QUERY}"
    assert messages_of(response) == ["View “Active VIPs” saved."]


def test_a_second_view_with_the_same_name_is_refused(staff_client, saved):
    response = staff_client.post(
        "/customers/views/new/", {"name": "上海 VIP", "query": "status=lead"}
    )
    assert SavedView.objects.count() == 1
    assert SavedView.objects.get().query == QUERY
    assert response.status_code == 302
    assert response["Location"] == "/customers/?status=lead"
    assert messages_of(response) == ["You already have a view with this name."]


def test_a_view_needs_a_name(staff_client):
    response = staff_client.post("/customers/views/new/", {"name": "  ", "query": "status=lead"})
    assert not SavedView.objects.exists()
    assert messages_of(response) == ["This field is required."]


def test_two_users_may_give_their_views_the_same_name(client, staff2, saved):
    client.force_login(staff2)
    client.post("/customers/views/new/", {"name": "上海 VIP", "query": "status=lead"})
    assert SavedView.objects.filter(name="上海 VIP").count() == 2


def test_reopening_a_view_shows_the_list_with_its_query(staff_client, staff, saved, make_customer):
    make_customer("张伟", status="active", tags=["vip"], owner=staff)
    make_customer("张三", status="lead", tags=["vip"], owner=staff)
    make_customer("李四", status="active", tags=["vip"], owner=staff)
    content = staff_client.get("/customers/").content.decode()
    assert f'href="/customers/?{QUERY.replace("&", "&amp;")}"' in content
    response = staff_client.get(saved.get_absolute_url())
    assert [c.display_name for c in response.context["page"].items] == ["张伟"]
    assert response.context["sort"] == "name"


def test_saved_views_page_lists_only_the_users_own_views(staff_client, staff2, saved):
    SavedView.objects.create(user=staff2, name="Someone else's view", query="status=lead")
    content = staff_client.get("/customers/views/").content.decode()
    assert "上海 VIP" in content
    assert "Someone else" not in content


def test_staff_renames_a_view(staff_client, saved):
    response = staff_client.post(
        f"/customers/views/{saved.pk}/rename/", {"name": "VIPs in Shanghai"}
    )
    saved.refresh_from_db()
    assert saved.name == "VIPs in Shanghai"
    assert saved.query == QUERY
    assert response["Location"] == "/customers/views/"
    assert messages_of(response) == ["View renamed to “VIPs in Shanghai”."]


def test_renaming_a_view_to_the_name_of_another_is_refused(staff_client, staff, saved):
    other = SavedView.objects.create(user=staff, name="Leads", query="status=lead")
    response = staff_client.post(f"/customers/views/{other.pk}/rename/", {"name": "上海 VIP"})
    other.refresh_from_db()
    assert other.name == "Leads"
    assert messages_of(response) == ["You already have a view with this name."]


def test_staff_deletes_a_view(staff_client, saved):
    response = staff_client.post(f"/customers/views/{saved.pk}/delete/")
    assert not SavedView.objects.exists()
    assert response["Location"] == "/customers/views/"
    assert messages_of(response) == ["View “上海 VIP” deleted."]


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_another_users_view_is_not_found(client, staff2, saved, action):
    client.force_login(staff2)
    response = client.post(f"/customers/views/{saved.pk}/{action}/", {"name": "Mine now"})
    assert response.status_code == 404
    saved.refresh_from_db()
    assert saved.name == "上海 VIP"


@pytest.mark.parametrize(
    "path",
    ["/customers/views/new/", "/customers/views/{pk}/rename/", "/customers/views/{pk}/delete/"],
)
def test_saved_view_changes_refuse_get(staff_client, saved, path):
    response = staff_client.get(path.format(pk=saved.pk))
    assert response.status_code == 405
    assert SavedView.objects.get().name == "上海 VIP"


def test_saved_views_page_refuses_post(staff_client, saved):
    assert staff_client.post("/customers/views/").status_code == 405


def test_anonymous_visitor_cannot_save_a_view(client, staff):
    response = client.post("/customers/views/new/", {"name": "x", "query": ""})
    assert response.status_code == 302
    assert urllib.parse.urlsplit(response["Location"]).path == "/accounts/login/"
    assert not SavedView.objects.exists()
