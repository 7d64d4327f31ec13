"""Quick entry in stores and at expos: JSON for the page's script, a plain form without it."""

import importlib
import re
import threading
import uuid

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse

from intake.models import Form, Submission

pytestmark = pytest.mark.django_db

URL = "/entry/"
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def quick_entry_form(db):
    """The quick-entry form as its data migration makes it (a test database may have been
    emptied by an earlier test since the migration ran)."""
    migration = importlib.import_module("intake.migrations.0002_quick_entry_form")
    return migration.create_quick_entry_form(apps)


def entry(**values):
    data = {
        "entry-channel": "expo",
        "entry-event": "2026 上海车展",
        "entry-client_key": str(uuid.uuid4()),
        "name": "张伟",
        "phone": "138 0013 8000",
        "email": "Zhang.Wei@Example.com",
        "company": "上海华东贸易",
        "interests": ["new_products", "offers"],
        "notes": "想要样品",
        "marketing_consent": "on",
    }
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def test_the_url_is_named_quick_entry():
    assert reverse("intake:quick_entry") == URL


def test_quick_entry_is_a_real_unpublished_form(quick_entry_form):
    assert quick_entry_form.slug == "quick-entry"
    assert not quick_entry_form.is_published
    keys = list(quick_entry_form.fields.values_list("key", flat=True))
    assert keys == ["name", "phone", "email", "company", "interests", "notes", "marketing_consent"]


def test_page_is_made_for_fast_typing_on_a_phone(staff_client, quick_entry_form, english):
    response = staff_client.get(URL)
    assert response.status_code == 200
    answers = response.context["answers"]
    assert answers["name"].field.widget.attrs.get("autofocus")
    assert answers["phone"].field.widget.attrs["inputmode"] == "tel"
    assert answers["email"].field.widget.attrs["inputmode"] == "email"
    page = response.content.decode()
    assert 'name="entry-client_key"' in page
    assert "js/quick-entry.js" in page
    assert 'data-name-field="name"' in page


def test_the_browser_neither_fills_in_nor_keeps_customers_contacts(staff_client, quick_entry_form):
    # Staff type other people's details, often on a shared tablet.
    page = staff_client.get(URL).content.decode()
    for key in ("name", "phone", "email", "notes"):
        assert re.search(rf'<[^>]*name="{key}"[^>]*autocomplete="off"', page), key
    assert 'autocomplete="email"' not in page and 'autocomplete="tel"' not in page


def test_an_entry_from_a_page_another_user_opened_is_refused(
    staff_client, staff, manager, quick_entry_form
):
    data = entry()
    response = staff_client.post(URL, data, HTTP_X_ENTRY_USER=str(manager.pk), **JSON)
    assert response.status_code == 409
    assert not Submission.objects.exists()
    response = staff_client.post(URL, data, HTTP_X_ENTRY_USER=str(staff.pk), **JSON)
    assert response.status_code == 201
    assert Submission.objects.get().entered_by == staff


def test_place_named_in_the_address_is_preset(staff_client, quick_entry_form):
    response = staff_client.get(URL, {"entry-channel": "expo", "entry-event": "广交会"})
    entry_form = response.context["entry"]
    assert entry_form["channel"].value() == "expo"
    assert entry_form["event"].value() == "广交会"


def test_json_entry_is_created_and_queued_for_processing(
    staff_client, staff, quick_entry_form, django_capture_on_commit_callbacks
):
    data = entry()
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(URL, data, **JSON)
    assert response.status_code == 201
    assert response.json()["name"] == "张伟"
    assert response.json()["message"].endswith("张伟")
    submission = Submission.objects.get(client_key=data["entry-client_key"])
    assert submission.form == quick_entry_form
    assert submission.entered_by == staff
    assert (submission.channel, submission.event) == ("expo", "2026 上海车展")
    assert submission.state == Submission.State.RECEIVED
    assert submission.answers == {
        "interests": ["new_products", "offers"],
        "marketing_consent": True,
    }
    assert submission.private_answers["phone"] == "+8613800138000"
    assert submission.private_answers["email"] == "zhang.wei@example.com"
    assert len(callbacks) == 1  # processing starts once the entry is committed


def test_an_entry_sent_again_is_stored_once(staff_client, quick_entry_form):
    data = entry()
    first = staff_client.post(URL, data, **JSON)
    again = staff_client.post(URL, data, **JSON)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["key"] == data["entry-client_key"]
    assert Submission.objects.filter(client_key=data["entry-client_key"]).count() == 1


def test_an_entry_sent_again_after_a_change_is_still_the_first_one(staff_client, quick_entry_form):
    data = entry()
    staff_client.post(URL, data, **JSON)
    response = staff_client.post(URL, {**data, "phone": "not a phone"}, **JSON)
    assert response.status_code == 200
    assert Submission.objects.filter(form=quick_entry_form).count() == 1


def test_invalid_entry_gets_its_field_errors_as_json(staff_client, quick_entry_form, english):
    response = staff_client.post(URL, entry(name="", phone="12345"), **JSON)
    assert response.status_code == 400
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"name", "phone"}
    assert errors["phone"]["label"] == "Mobile phone"
    assert "valid mobile number" in errors["phone"]["messages"][0]
    assert not Submission.objects.exists()


def test_entry_needs_a_way_to_reach_the_customer(staff_client, quick_entry_form, english):
    response = staff_client.post(URL, entry(phone="", email=""), **JSON)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == ""
    assert "mobile number or an email address" in error["messages"][0]


def test_entry_for_another_channel_is_refused(staff_client, quick_entry_form):
    response = staff_client.post(URL, entry(**{"entry-channel": "website"}), **JSON)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "entry-channel"


def test_a_key_used_by_another_user_is_refused_without_saying_whose(
    client, staff, manager, verified_login, quick_entry_form
):
    data = entry()
    client.force_login(staff)
    client.post(URL, data, **JSON)
    other = verified_login(Client(), manager)
    response = other.post(URL, {**data, "name": "李娜"}, **JSON)
    assert response.status_code == 400
    assert "张伟" not in response.content.decode()
    assert Submission.objects.filter(client_key=data["entry-client_key"]).count() == 1


def test_plain_post_redirects_with_a_message_and_keeps_the_place(
    staff_client, quick_entry_form, english
):
    response = staff_client.post(URL, entry())
    assert response.status_code == 302
    assert response["Location"].startswith(URL + "?entry-channel=expo&entry-event=")
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Saved: 张伟"]
    followed = staff_client.get(response["Location"])
    assert followed.context["entry"]["event"].value() == "2026 上海车展"
    assert Submission.objects.count() == 1


def test_plain_post_sent_twice_is_stored_once(staff_client, quick_entry_form, english):
    data = entry()
    staff_client.post(URL, data)
    response = staff_client.post(URL, data)
    assert response.status_code == 302
    assert "already received" in str(list(get_messages(response.wsgi_request))[-1])
    assert Submission.objects.count() == 1


def test_plain_post_with_errors_shows_them_beside_the_fields(
    staff_client, quick_entry_form, english
):
    response = staff_client.post(URL, entry(phone="12345", **{"entry-client_key": ""}))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid mobile number" in page
    assert 'value="上海华东贸易"' in page  # nothing typed is lost
    # The form shown again has a key, so that sending it twice still stores it once.
    assert response.context["entry"]["client_key"].value()
    assert not Submission.objects.exists()


def test_quick_entry_refuses_other_methods(staff_client, quick_entry_form):
    assert staff_client.put(URL).status_code == 405
    assert staff_client.delete(URL).status_code == 405


@pytest.mark.parametrize("persona", ["viewer", "auditor"])
def test_users_who_may_not_create_customers_cannot_use_quick_entry(
    client, persona, request, quick_entry_form
):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(URL).status_code == 403
    assert client.post(URL, entry(), **JSON).status_code == 403
    assert not Submission.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(client, quick_entry_form):
    response = client.post(URL, entry(), **JSON)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_without_the_form_the_page_is_404(staff_client):
    Form.objects.filter(slug="quick-entry").delete()
    assert staff_client.get(URL).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_key_store_one_entry(staff, quick_entry_form):
    data = entry()
    barrier = threading.Barrier(2)
    answers = []

    def send():
        client = Client()
        client.force_login(staff)
        barrier.wait()
        try:
            answers.append(client.post(URL, data, **JSON).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) in ([200, 201], [201, 201])
    assert Submission.objects.filter(client_key=data["entry-client_key"]).count() == 1


def test_service_worker_is_served_from_the_entry_page_with_its_files(client):
    response = client.get(reverse("intake:quick_entry_worker"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-cache"
    script = response.content.decode()
    assert script.startswith('const PAGE = "/entry/";')
    assert "/static/js/quick-entry.js" in script
    assert 'addEventListener("fetch"' in script


def test_page_tells_its_script_how_many_entries_may_wait(staff_client, quick_entry_form, settings):
    settings.INTAKE_QUICK_ENTRY_QUEUE_LIMIT = 7
    assert 'data-queue-limit="7"' in staff_client.get(URL).content.decode()
