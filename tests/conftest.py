"""Shared fixtures: the personas every test talks about, and a real Celery worker."""

import os
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts import roles
from accounts.models import Team
from customers.models import Customer

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _isolated_cache(settings, worker_id):
    # Parallel test processes share one Redis; keep their cache keys apart. Each test starts
    # with fresh filter options, as the rows a previous test cached them from are rolled back.
    from django.core.cache import cache

    from customers.filters import FILTER_OPTIONS_KEY

    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "KEY_PREFIX": f"cims-test-{worker_id}-{os.getpid()}",
        }
    }
    cache.delete(FILTER_OPTIONS_KEY)
    yield
    cache.delete(FILTER_OPTIONS_KEY)


@pytest.fixture(autouse=True)
def _media_in_a_temporary_directory(settings, tmp_path):
    # Uploaded imports and reports of tests must not pile up under var/media.
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The real hasher costs about a third of a second per user on a small machine; tests that
    # create several personas would spend most of their time hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def teams(db):
    return Team.objects.create(name="华东销售"), Team.objects.create(name="North Sales")


def make_user(username, *, role=None, teams=(), **extra):
    """A user with one of the built-in roles (accounts.roles) and the given teams."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    for team in teams:
        team.members.add(user)
    return user


@pytest.fixture
def admin_user(db):
    return make_user("admin", role=roles.ADMINISTRATOR, is_staff=True, is_superuser=True)


@pytest.fixture
def manager(teams):
    return make_user(
        "manager", role=roles.MANAGER, teams=[teams[0]], first_name="Mei", last_name="Lin"
    )


@pytest.fixture
def staff(teams):
    return make_user("staff", role=roles.STAFF, teams=[teams[0]], first_name="伟", last_name="张")


@pytest.fixture
def staff2(teams):
    return make_user("staff2", role=roles.STAFF, teams=[teams[1]])


@pytest.fixture
def viewer(teams):
    return make_user("viewer", role=roles.VIEWER, teams=[teams[0]])


@pytest.fixture
def auditor(db):
    return make_user("auditor", role=roles.AUDITOR)


@pytest.fixture
def outsider(db):
    return make_user("outsider", role=roles.STAFF, is_active=False)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def customer(staff, teams):
    return Customer.objects.create(
        display_name="张伟",
        family_name="张",
        given_name="伟",
        email="zhang.wei@example.com",
        phone="+8613800138000",
        company="上海华东贸易有限公司",
        province="上海市",
        city="上海",
        status="active",
        source="store",
        tags=["vip"],
        owner=staff,
        team=teams[0],
        created_by=staff,
    )


def _send_tasks_to(queue):
    from cims.celery import app

    if app.conf.task_default_queue != queue:
        app.conf.task_default_queue = queue
        # Celery fixes its queue declarations when the first task is sent.
        app.__dict__.pop("amqp", None)


@pytest.fixture(scope="session")
def _celery_test_queues(worker_id):
    """The queue this test process's worker consumes, and one that nobody consumes.

    Test runs of other checkouts may share this Redis: the process id keeps queues apart.
    """
    from cims.celery import app

    worker_queue = f"cims-test-{worker_id}-{os.getpid()}"
    unconsumed = f"{worker_queue}-unconsumed"
    yield worker_queue, unconsumed
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(unconsumed)


@pytest.fixture(autouse=True)
def _celery_queue_of_the_test(request, _celery_test_queues):
    """Only tests with the worker send it tasks.

    The worker lives for the whole session; a task queued by another test (one whose data is
    committed, then emptied) would otherwise run at some later moment, perhaps while the
    database is being emptied for the next test, and the two can deadlock.
    """
    worker_queue, unconsumed = _celery_test_queues
    uses_worker = "celery_worker" in request.fixturenames
    _send_tasks_to(worker_queue if uses_worker else unconsumed)


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker, _celery_test_queues):
    """A real Celery worker thread consuming a queue of this test process, through Redis."""
    from celery.contrib.testing.worker import start_worker

    from cims.celery import app

    _send_tasks_to(_celery_test_queues[0])
    with (
        django_db_blocker.unblock(),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker,
    ):
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    """Tests using the worker need committed data, which the worker's connection can see."""
    from celery.worker import state

    yield celery_worker_session
    # A task still running when the test ends would hold locks while the database is emptied.
    deadline = time.monotonic() + 10
    while state.active_requests and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def planner_expects(monkeypatch):
    """Make PostgreSQL's row estimate (EXPLAIN) say `rows`; counting still reads the table."""
    import json

    from django.db.models import QuerySet

    def expect(rows):
        plan = json.dumps([{"Plan": {"Plan Rows": rows}}])
        monkeypatch.setattr(QuerySet, "explain", lambda self, **options: plan)

    return expect


@pytest.fixture
def make_customer(db):
    """Create a customer through save(), so its search columns are filled."""

    def make(display_name="客户", **fields):
        return Customer.objects.create(display_name=display_name, **fields)

    return make


@pytest.fixture
def custom_fields(db):
    """One active custom field of every type, keyed by type."""
    from customers.models import CustomField

    Type = CustomField.Type
    definitions = [
        ("hobby", Type.TEXT, []),
        ("score", Type.NUMBER, []),
        ("joined", Type.DATE, []),
        ("level", Type.CHOICE, ["gold", "silver"]),
        ("interests", Type.MULTI_CHOICE, ["golf", "tea", "wine"]),
        ("newsletter", Type.BOOLEAN, []),
    ]
    return {
        type_: CustomField.objects.create(
            key=key, label=key.title(), type=type_, choices=choices, position=position
        )
        for position, (key, type_, choices) in enumerate(definitions)
    }


@pytest.fixture
def english(settings):
    """Serve and validate in English, the language most tests' expected messages are in."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


# Two-factor authentication -----------------------------------------------------------------
# Administrators and managers must pass a second factor (accounts.roles.TWO_FACTOR_REQUIRED):
# after a plain client.force_login they are sent to set it up. Sign them in with these instead.


@pytest.fixture
def verified_login(db):
    """verified_login(client, user): sign `user` in on `client` as if they had entered a code
    from their authenticator app (a real confirmed TOTP device, created when they have none)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    def login(client, user):
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        client.force_login(user)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        return client

    return login


@pytest.fixture
def manager_client(manager, verified_login):
    # A client of its own, so a test can act as the manager and as staff at once.
    from django.test import Client

    return verified_login(Client(), manager)


@pytest.fixture
def admin_client(admin_user, verified_login):
    """Replaces pytest-django's admin_client: the administrator, past the second factor."""
    from django.test import Client

    return verified_login(Client(), admin_user)


@pytest.fixture(autouse=True)
def _fresh_cache_keys(_isolated_cache, settings):
    # Sign-in failures are counted in Redis per username and per address, and every test
    # client comes from 127.0.0.1: without a namespace of its own, each test would inherit the
    # failures (and lockouts) of the tests before it.
    import uuid

    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "KEY_PREFIX": f"{settings.CACHES['default']['KEY_PREFIX']}-{uuid.uuid4().hex[:8]}",
        }
    }
