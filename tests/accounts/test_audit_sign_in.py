"""Signing in, failing to, being locked out and signing out are recorded with the client IP."""

import pytest

from accounts.audit import Action, AuditEntry, client_ip
from accounts.signals import login_locked_out
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def last_entry(action):
    return AuditEntry.objects.filter(action=action).order_by("-seq").first()


def test_sign_in_is_recorded_with_user_and_ip(client, staff):
    client.post(LOGIN, {"username": "staff", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")

    entry = last_entry(Action.LOGIN)
    assert entry.actor == staff
    assert entry.actor_username == "staff"
    assert entry.ip == "203.0.113.7"
    assert entry.object_type == "accounts.user"


def test_failed_sign_in_keeps_the_username_but_never_the_password(client, staff):
    client.post(LOGIN, {"username": "staff", "password": "wrong-secret"}, REMOTE_ADDR="203.0.113.8")

    entry = last_entry(Action.LOGIN_FAILED)
    assert entry.data == {"username": "staff"}
    assert entry.actor is None
    assert entry.ip == "203.0.113.8"
    assert "wrong-secret" not in str(entry.data)
    assert not AuditEntry.objects.filter(action=Action.LOGIN).exists()


def test_sign_out_is_recorded(client, staff):
    client.force_login(staff)

    client.post("/accounts/logout/", REMOTE_ADDR="203.0.113.9")

    entry = last_entry(Action.LOGOUT)
    assert entry.actor == staff
    assert entry.ip == "203.0.113.9"


def test_lockout_signal_is_recorded(rf):
    request = rf.post(LOGIN, REMOTE_ADDR="198.51.100.4")

    login_locked_out.send(sender=None, username="staff", request=request)

    entry = last_entry(Action.LOCKOUT)
    assert entry.data == {"username": "staff"}
    assert entry.ip == "198.51.100.4"


def test_forged_forwarded_for_does_not_change_the_ip(client, staff):
    client.post(
        LOGIN,
        {"username": "staff", "password": PASSWORD},
        REMOTE_ADDR="203.0.113.7",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
    )

    assert last_entry(Action.LOGIN).ip == "203.0.113.7"


def test_behind_one_trusted_proxy_the_address_it_saw_is_used(rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7")

    # The client claimed 1.2.3.4; our proxy appended the address it really saw.
    assert client_ip(request) == "203.0.113.7"


def test_behind_two_trusted_proxies_the_outer_ones_view_is_used(rf, settings):
    settings.TRUSTED_PROXY_COUNT = 2
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7, 10.0.0.2"
    )

    assert client_ip(request) == "203.0.113.7"


def test_garbage_in_forwarded_for_gives_no_address(rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="<script>")

    assert client_ip(request) is None


def test_recording_deep_in_a_request_uses_its_user_and_ip(rf, staff):
    from accounts import audit

    request = rf.get("/", REMOTE_ADDR="192.0.2.10")
    request.user = staff

    def view(request):
        return audit.record(Action.REVEAL, data={"field": "phone"})

    entry = audit.AuditContextMiddleware(view)(request)

    assert (entry.actor, entry.ip) == (staff, "192.0.2.10")
    assert audit.current_request() is None


def test_ipv4_mapped_address_is_stored_as_ipv4(rf):
    assert client_ip(rf.get("/", REMOTE_ADDR="::ffff:203.0.113.5")) == "203.0.113.5"
