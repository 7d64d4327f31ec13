import io
import re

import phonenumbers
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum

from accounts.models import Team
from customers import demo, places
from customers.management.commands import seed_demo
from customers.models import Consent, Customer, Interaction, Order, Tag
from customers.search import search_fields


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(customers):
    call_command("seed_demo", customers=customers, stdout=io.StringIO())


def snapshot():
    """Every row the command writes, in a comparable form."""
    return {
        # Phone and email are encrypted with fresh nonces, so they are compared decrypted.
        "customers": sorted((c.id, c.phone, c.email, c.updated_at) for c in Customer.objects.all()),
        "orders": sorted(Order.objects.values_list("id", "external_id", "amount")),
        "interactions": sorted(Interaction.objects.values_list("id", "occurred_at")),
        "consents": sorted(Consent.objects.values_list("id", "recorded_at")),
        "users": sorted(get_user_model().objects.values_list("username", "first_name")),
        "teams": sorted(Team.objects.values_list("name", flat=True)),
        "tags": sorted(Tag.objects.values_list("name", flat=True)),
    }


@pytest.mark.django_db
def test_creates_demo_users_in_their_teams(client, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "a-demo-password")
    seed(10)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == {"admin", "manager", "staff", "staff2", "viewer", "auditor"}
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert not any(u.is_staff or u.is_superuser for name, u in users.items() if name != "admin")
    assert all(u.is_active and u.first_name and u.last_name for u in users.values())
    teams = {name: [t.name for t in u.teams.all()] for name, u in users.items()}
    assert teams["manager"] == teams["staff"] == teams["viewer"] == ["华东销售"]
    assert teams["staff2"] == ["华南销售"]
    assert client.login(username="staff", password="a-demo-password")


@pytest.mark.django_db
def test_creates_customers_with_history_and_tags():
    seed(50)
    assert Customer.objects.count() == 50
    assert Order.objects.count() > 50
    assert Interaction.objects.count() > 50
    assert Consent.objects.exists()
    assert set(Tag.objects.values_list("name", flat=True)) >= set(demo.TAGS)
    owners = set(Customer.objects.exclude(owner=None).values_list("owner__username", flat=True))
    assert owners <= {"manager", "staff", "staff2"}
    for customer in Customer.objects.exclude(owner=None).select_related("owner", "team"):
        assert customer.team in customer.owner.teams.all()


@pytest.mark.django_db
def test_running_twice_changes_nothing():
    seed(50)
    before = snapshot()
    seed(50)
    assert snapshot() == before


@pytest.mark.django_db
def test_a_larger_run_adds_only_the_missing_customers():
    seed(20)
    orders = Order.objects.count()
    seed(50)
    anchor = seed_demo.find_anchor()
    expected = {demo.customer_identity(index, anchor)[0] for index in range(50)}
    assert {pk.hex for pk in Customer.objects.values_list("id", flat=True)} == expected
    assert Order.objects.count() > orders
    duplicates = Order.objects.values("source_system", "external_id").annotate(n=Count("id"))
    assert not duplicates.filter(n__gt=1).exists()


@pytest.mark.django_db
def test_search_columns_are_what_save_computes():
    seed(50)
    for customer in Customer.objects.all():
        expected = search_fields(
            display_name=customer.display_name,
            family_name=customer.family_name,
            given_name=customer.given_name,
            company=customer.company,
        )
        stored = {field: getattr(customer, field) for field in expected}
        assert stored == expected, customer.display_name


@pytest.mark.django_db
def test_customers_satisfy_the_model_constraints():
    seed(50)
    customers = list(Customer.objects.all())
    for customer in customers:
        customer.full_clean()
        number = phonenumbers.parse(customer.phone)
        assert phonenumbers.is_valid_number(number)
        assert re.fullmatch(r"\+861[3-9]\d{9}", customer.phone)
        assert customer.email == customer.email.lower()
        assert customer.updated_at >= customer.created_at
        assert customer.province in places.PROVINCES
    emails = [c.email for c in customers if c.email]
    assert len(set(emails)) == len(emails) > 0
    assert len({c.phone for c in customers}) == len(customers)


@pytest.mark.django_db
def test_orders_add_up_and_follow_their_customer():
    seed(50)
    for order in Order.objects.select_related("customer"):
        assert order.lines
        assert order.amount == Order.total_of(order.lines)
        assert order.ordered_at >= order.customer.created_at
        assert re.fullmatch(r"[A-Z]{3}", order.currency)
    for interaction in Interaction.objects.select_related("customer"):
        assert interaction.occurred_at >= interaction.customer.created_at


def test_every_generated_phone_prefix_is_a_valid_mobile_range():
    for index in range(5000):
        number = phonenumbers.parse(demo.phone_number(index))
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_array_literals_survive_special_characters():
    assert demo.pg_array([]) == "{}"
    assert demo.pg_array(["VIP", "新客"]) == '{"VIP","新客"}'
    assert demo.pg_array(['a"b', "c\\d"]) == '{"a\\"b","c\\\\d"}'


@pytest.mark.django_db
def test_a_large_load_leaves_the_indexes_as_migrated(monkeypatch, english):
    def index_names():
        names = set()
        with connection.cursor() as cursor:
            for model in seed_demo.TABLES:
                table = model._meta.db_table
                names |= set(connection.introspection.get_constraints(cursor, table))
        return names

    before = index_names()
    monkeypatch.setattr(seed_demo, "REBUILD_INDEXES_FROM", 10)
    output = io.StringIO()
    call_command("seed_demo", customers=30, stdout=output)
    assert "Dropping" in output.getvalue()
    assert index_names() == before
    assert Customer.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_chunks_load_in_worker_processes(monkeypatch):
    monkeypatch.setattr(seed_demo, "CHUNK", 20)
    seed(50)
    assert Customer.objects.count() == 50
    assert not Order.objects.exclude(customer__in=Customer.objects.all()).exists()
    before = snapshot()
    seed(50)
    assert snapshot() == before


@pytest.mark.django_db
def test_loaded_customers_have_their_order_figures_and_dashboard_summaries():
    from reports.models import CustomerMetrics
    from reports.models.summaries import rebuild_summaries
    from tests.reports.test_dashboard import snapshot as summaries

    seed(60)
    orders = {
        row["customer"]: (row["n"], row["total"])
        for row in Order.objects.values("customer").annotate(n=Count("id"), total=Sum("amount"))
    }
    metrics = {m.customer_id: m for m in CustomerMetrics.objects.all()}
    assert set(metrics) == set(Customer.objects.values_list("id", flat=True))
    for customer_id, m in metrics.items():
        n, total = orders.get(customer_id, (0, 0))
        assert (m.orders, m.revenue) == (n, total)
    # Scored by the command's refresh.
    assert any(m.segment for m in metrics.values())
    loaded = summaries()
    assert loaded["DashboardSignups"]
    rebuild_summaries()
    assert summaries() == loaded
