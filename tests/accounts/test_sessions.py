"""How long sessions last, and ending them everywhere."""

import time

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client

from accounts import sessions
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

NEW_PASSWORD = "teapot-orbit-lantern-9"


def signed_in_client(username="staff"):
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/customers/").status_code == 200
    return client


def session_key(client):
    return client.session.session_key


def age_session(client, *, signed_in=0, last_seen=0):
    """Move the session's clocks back by the given number of seconds."""
    session = client.session
    session[sessions.SIGNED_IN_AT] -= signed_in
    session[sessions.LAST_SEEN] -= last_seen
    session.save()


def test_defaults_are_thirty_idle_minutes_and_twelve_hours_in_all(settings):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_MAX_AGE == 12 * 60 * 60


def test_session_cookie_lasts_as_long_as_the_idle_limit(client, staff):
    response = client.post("/accounts/login/", {"username": "staff", "password": PASSWORD})
    assert response.cookies["sessionid"]["max-age"] == 30 * 60


def test_session_ends_after_thirty_idle_minutes(staff):
    client = signed_in_client()
    age_session(client, last_seen=30 * 60 + 1)
    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    page = client.get(response["Location"]).content.decode()
    assert "You were signed out after 30 minutes without activity." in page


def test_session_used_within_thirty_minutes_goes_on(staff):
    client = signed_in_client()
    age_session(client, last_seen=29 * 60)
    assert client.get("/customers/").status_code == 200
    assert time.time() - client.session[sessions.LAST_SEEN] < 60, "the clock was reset"


def test_session_ends_twelve_hours_after_sign_in_however_active(staff):
    client = signed_in_client()
    age_session(client, signed_in=12 * 60 * 60)
    response = client.get("/customers/")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "sessions last at most 12 hours" in page


def test_limits_come_from_settings(settings, staff):
    settings.SESSION_MAX_AGE = 60
    client = signed_in_client()
    age_session(client, signed_in=61)
    assert client.get("/customers/").status_code == 302


def test_activity_is_written_at_most_once_a_minute(staff):
    client = signed_in_client()
    client.get("/customers/")
    before = Session.objects.get(session_key=session_key(client)).expire_date
    client.get("/customers/")
    assert Session.objects.get(session_key=session_key(client)).expire_date == before


def test_session_of_a_deactivated_user_stops_working(staff):
    client = signed_in_client()
    staff.is_active = False
    staff.save()
    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_changing_the_password_keeps_this_session_and_ends_the_others(staff, staff2):
    this, other, someone_else = signed_in_client(), signed_in_client(), signed_in_client("staff2")
    other_key = session_key(other)

    response = this.post(
        "/accounts/security/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert this.get("/customers/").status_code == 200
    assert other.get("/customers/").status_code == 302
    assert not Session.objects.filter(session_key=other_key).exists()
    assert someone_else.get("/customers/").status_code == 200


def test_end_sessions_deletes_a_users_sessions_from_database_and_cache(staff, staff2):
    first, second, other_user = signed_in_client(), signed_in_client(), signed_in_client("staff2")
    keys = [session_key(first), session_key(second)]

    sessions.end_sessions(staff)

    assert not Session.objects.filter(session_key__in=keys).exists()
    assert cache.get_many([sessions.CachedDBStore.cache_key_prefix + key for key in keys]) == {}
    assert first.get("/customers/").status_code == 302
    assert second.get("/customers/").status_code == 302
    assert other_user.get("/customers/").status_code == 200


def test_end_sessions_can_keep_one(staff):
    kept, ended = signed_in_client(), signed_in_client()
    sessions.end_sessions(staff, keep=session_key(kept))
    assert kept.get("/customers/").status_code == 200
    assert ended.get("/customers/").status_code == 302


def test_end_sessions_does_not_read_other_users_sessions(
    staff, staff2, viewer, django_assert_max_num_queries
):
    signed_in_client()
    for _ in range(5):
        signed_in_client("staff2")
        signed_in_client("viewer")
    # Deleting one session is a lookup and a delete; the ten others are never read.
    with django_assert_max_num_queries(2):
        sessions.end_sessions(staff)


def test_end_sessions_finds_sessions_begun_without_the_sign_in_page(client, staff):
    client.force_login(staff)
    assert client.get("/customers/").status_code == 200
    sessions.end_sessions(staff)
    assert client.get("/customers/").status_code == 302


def test_sessions_work_from_the_database_while_redis_is_down(settings, staff):
    from django.test import override_settings

    client = signed_in_client()
    dead = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    with override_settings(CACHES=dead):
        response = client.get("/accounts/security/")
    assert response.status_code == 200


def test_end_sessions_does_not_fail_while_redis_is_down(settings, staff):
    from django.test import override_settings

    signed_in_client()
    dead = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    with override_settings(CACHES=dead):
        sessions.end_sessions(staff)
