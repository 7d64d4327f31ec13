"""The report builder's "Consents to" filter: reports limited to the customers who consent to a
purpose now (or who do not), on every source, with the archive, saved, scheduled or run from the
command line."""

import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from customers import archiving, consents
from customers.models import Customer, Interaction, Order
from reports import reporting
from reports.models import SavedReport

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

EMAIL, SMS = "marketing_email", "sms"
GRANTED_EMAIL = {"field": "consents", "op": "granted", "value": EMAIL}


def grant(customer, purpose=EMAIL):
    consents.record_consent(customer=customer, purpose=purpose, granted=True, source="store")


def withdraw(customer, purpose=EMAIL):
    consents.record_consent(customer=customer, purpose=purpose, granted=False, source="store")


@pytest.fixture
def world(staff, teams):
    """甲 grants email and SMS; 乙 granted email, then withdrew it; 丙 was never asked."""
    customers = {}
    for name in ("甲", "乙", "丙"):
        customer = Customer.objects.create(display_name=name, owner=staff, team=teams[0])
        Order.objects.create(
            customer=customer,
            external_id=f"{name}-1",
            amount=Decimal("10"),
            ordered_at=timezone.now(),
        )
        Interaction.objects.create(customer=customer, kind="call", summary=f"Called {name}")
        customers[name] = customer
    grant(customers["甲"])
    grant(customers["甲"], SMS)
    grant(customers["乙"])
    withdraw(customers["乙"])
    return customers


def names(definition, user):
    return sorted(row[0] for row in reporting.build_table(definition, user).rows)


def customer_rows(*filters, archive=False):
    return {
        "source": "customers",
        "columns": ["name"],
        "filters": list(filters),
        "archive": archive,
    }


def test_granted_keeps_only_those_who_consent_now(world, admin_user):
    assert names(customer_rows(GRANTED_EMAIL), admin_user) == ["甲"]


def test_not_granted_keeps_those_who_withdrew_or_were_never_asked(world, admin_user):
    definition = customer_rows({"field": "consents", "op": "not_granted", "value": EMAIL})
    assert names(definition, admin_user) == ["丙", "乙"]


def test_a_withdrawal_after_saving_takes_effect_on_the_next_run(world, admin_user, manager):
    report = SavedReport.objects.create(
        name="Newsletter", definition=customer_rows(GRANTED_EMAIL), owner=manager
    )
    assert [r[0] for r in report.table(admin_user).rows] == ["甲"]
    withdraw(world["甲"])
    assert list(report.table(admin_user).rows) == []


def test_the_purpose_may_be_given_by_its_label(world, admin_user):
    definition = customer_rows({"field": "consents", "op": "granted", "value": "Marketing email"})
    assert names(definition, admin_user) == ["甲"]


def test_two_consent_filters_must_both_match(world, admin_user):
    grant(world["丙"], SMS)
    definition = customer_rows(
        {"field": "consents", "op": "granted", "value": SMS},
        {"field": "consents", "op": "not_granted", "value": EMAIL},
    )
    assert names(definition, admin_user) == ["丙"]


def test_orders_and_interactions_follow_their_customers_consent(world, admin_user):
    orders = {
        "source": "orders",
        "columns": ["order_number"],
        "filters": [{"field": "customer_consents", "op": "granted", "value": EMAIL}],
    }
    assert names(orders, admin_user) == ["甲-1"]
    interactions = {
        "source": "interactions",
        "columns": ["summary"],
        "filters": [{"field": "customer_consents", "op": "not_granted", "value": EMAIL}],
    }
    assert names(interactions, admin_user) == ["Called 丙", "Called 乙"]


def test_the_archive_is_filtered_by_archived_customers_consent(world, admin_user):
    archiving.archive_customers([world["甲"].pk, world["乙"].pk])

    assert names(customer_rows(GRANTED_EMAIL), admin_user) == []
    assert names(customer_rows(GRANTED_EMAIL, archive=True), admin_user) == ["甲"]
    not_granted = {"field": "consents", "op": "not_granted", "value": EMAIL}
    assert names(customer_rows(not_granted, archive=True), admin_user) == ["丙", "乙"]
    orders = {
        "source": "orders",
        "group_by": ["channel"],
        "aggregates": [{"func": "count"}, {"func": "sum", "field": "amount"}],
        "filters": [{"field": "customer_consents", "op": "granted", "value": EMAIL}],
        "archive": True,
    }
    assert [row[1:] for row in reporting.build_table(orders, admin_user).rows] == [
        (1, Decimal("10.00"))
    ]


def test_consents_are_a_column_with_their_labels(world, admin_user):
    archiving.archive_customers([world["甲"].pk])
    definition = {
        "source": "customers",
        "columns": ["name", "consents"],
        "sort": {"key": "name", "desc": False},
        "archive": True,
    }
    rows = reporting.build_table(definition, admin_user).rows
    assert list(rows) == [("丙", ""), ("乙", ""), ("甲", "Marketing email, SMS")]


def test_the_description_names_the_purpose_and_the_condition(world, admin_user):
    table = reporting.build_table(customer_rows(GRANTED_EMAIL), admin_user)
    assert ("Consents to", "Marketing email: is granted") in table.filters
    definition = customer_rows({"field": "consents", "op": "not_granted", "value": "SMS"})
    table = reporting.build_table(definition, admin_user)
    assert ("Consents to", "SMS: is not granted") in table.filters


@pytest.mark.parametrize(
    "item",
    [
        {"field": "consents", "op": "granted", "value": "carrier_pigeon"},
        {"field": "consents", "op": "granted", "value": ""},
        {"field": "consents", "op": "eq", "value": EMAIL},
        {"field": "consents", "op": "has", "value": EMAIL},
        {"field": "status", "op": "granted", "value": "active"},
    ],
)
def test_wrong_consent_filters_are_refused(item):
    with pytest.raises(ValidationError):
        reporting.validate_definition(customer_rows(item))


def test_consents_cannot_be_grouped_by():
    with pytest.raises(ValidationError):
        reporting.validate_definition({"source": "customers", "group_by": ["consents"]})


def test_the_granted_filter_can_use_the_consent_index(world, admin_user):
    queryset, _keys = reporting.report_queryset(
        reporting.validate_definition(customer_rows(GRANTED_EMAIL)), admin_user
    )
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        # With a handful of rows the planner would rightly scan them; this asks whether the
        # condition is one the index can answer at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "customer_consents_idx" in plan


# --- Pages and the command line -------------------------------------------------------------


@pytest.fixture
def manager_client(client, manager, verified_login, settings):
    verified_login(client, manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def consent_post(value, **fields):
    data = {
        "source": "customers",
        "action": "run",
        "columns": ["name"],
        "filter_0_field": "consents",
        "filter_0_op": "granted",
        "filter_0_value": value,
    }
    data.update(fields)
    return data


def test_the_builder_runs_a_consent_filtered_report(manager_client, world):
    response = manager_client.post(reverse("reports:create"), consent_post("Marketing email"))
    assert response.status_code == 200
    assert response.context["result"]["rows"] == [("甲",)]


def test_an_unknown_purpose_is_a_form_error_beside_the_filter(manager_client, world):
    response = manager_client.post(reverse("reports:create"), consent_post("carrier_pigeon"))
    assert response.status_code == 400
    assert response.context["form"].errors["filter_0_value"] == [
        "carrier_pigeon is not a choice of Consents to."
    ]
    assert not SavedReport.objects.exists()


def test_a_saved_report_keeps_the_consent_filter(manager_client, manager, world):
    data = consent_post(EMAIL, action="save", name="Newsletter")
    response = manager_client.post(reverse("reports:create"), data)
    report = SavedReport.objects.get(owner=manager, name="Newsletter")
    assert response.status_code == 302
    assert report.definition["filters"] == [GRANTED_EMAIL]
    assert [r[0] for r in report.table(manager).rows] == ["甲"]
    page = manager_client.get(reverse("reports:edit", args=[report.pk])).content.decode()
    assert re.search(r'<option value="granted" selected>', page)
    assert re.search(r'name="filter_0_value"[^>]*value="marketing_email"', page)


def test_run_report_writes_only_consenting_customers(world, manager, tmp_path):
    SavedReport.objects.create(
        name="Newsletter", definition=customer_rows(GRANTED_EMAIL), owner=manager
    )
    target = tmp_path / "newsletter.xlsx"
    call_command(
        "run_report", "Newsletter", "--as", "manager", "--format", "xlsx", "--output", target,
        stdout=io.StringIO(),
    )  # fmt: skip
    book = openpyxl.load_workbook(target)
    rows = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    assert ["甲"] in rows and ["乙"] not in rows and ["丙"] not in rows
    about = [[c.value for c in row] for row in book["About"].iter_rows()]
    assert ["Consents to", "Marketing email: is granted"] in about
