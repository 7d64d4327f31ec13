"""Reports that include the archive: live and archived records counted together, each runner
seeing only the customers they may see, live or archived."""

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from customers import archiving
from customers.models import ArchivedOrder, Customer, Interaction, Order
from reports import reporting
from reports.models import SavedReport

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

DEFINITIONS = {
    "customers by province": {
        "source": "customers",
        "group_by": ["province"],
        "aggregates": [
            {"func": "count"},
            {"func": "sum", "field": "revenue"},
            {"func": "avg", "field": "orders"},
            {"func": "max", "field": "last_order_at"},
        ],
        "sort": {"key": "sum_revenue", "desc": True},
    },
    "customers by segment and owner": {
        "source": "customers",
        "group_by": ["segment", "owner"],
        "aggregates": [{"func": "count"}],
    },
    "customer rows": {
        "source": "customers",
        "columns": ["name", "province", "status", "tags", "orders", "revenue"],
        "filters": [{"field": "status", "op": "in", "value": "active, lead"}],
        "sort": {"key": "name", "desc": False},
    },
    "orders by channel": {
        "source": "orders",
        "group_by": ["channel", "customer_province"],
        "aggregates": [
            {"func": "count"},
            {"func": "sum", "field": "amount"},
            {"func": "avg", "field": "amount"},
            {"func": "min", "field": "ordered_at"},
        ],
        "filters": [{"field": "amount", "op": "gte", "value": "10"}],
    },
    "order rows": {
        "source": "orders",
        "columns": ["order_number", "amount", "customer_name", "customer_owner"],
        "sort": {"key": "order_number", "desc": False},
    },
    "orders by month": {
        "source": "orders",
        "group_by": ["ordered_month"],
        "aggregates": [{"func": "sum", "field": "amount"}],
    },
    "interactions by kind": {
        "source": "interactions",
        "group_by": ["kind", "recorded_by"],
        "aggregates": [{"func": "count"}],
    },
    "interaction rows": {
        "source": "interactions",
        "columns": ["summary", "customer_name", "recorded_by"],
        "sort": {"key": "summary", "desc": False},
    },
}


@pytest.fixture
def world(staff, staff2, manager, teams):
    rows = [
        ("甲", "广东省", "active", staff, teams[0], ["100", "50"]),
        ("乙", "广东省", "lead", staff, teams[0], ["20"]),
        ("丙", "上海市", "active", staff2, teams[1], ["300"]),
        ("丁", "广东省", "active", staff2, teams[1], ["7", "12"]),
        ("戊", "", "churned", None, None, []),
    ]
    customers = {}
    for name, province, status, owner, team, amounts in rows:
        customer = Customer.objects.create(
            display_name=name, province=province, status=status, owner=owner, team=team,
            tags=["vip"] if owner == staff else [],
        )  # fmt: skip
        for i, amount in enumerate(amounts):
            Order.objects.create(
                customer=customer, external_id=f"{name}{i}", amount=Decimal(amount),
                channel="wechat" if i else "store",
                ordered_at=timezone.now() - datetime.timedelta(days=40 * (i + 1)),
            )  # fmt: skip
        Interaction.objects.create(
            customer=customer, kind="call", summary=f"Called {name}", created_by=manager
        )
        customers[name] = customer
    return customers


def figures(user, *, archive):
    return {
        name: list(reporting.build_table({**d, "archive": archive}, user).rows)
        for name, d in DEFINITIONS.items()
    }


def archive_some(world):
    # 甲 (staff's) and 丙 (staff2's) go to the archive with everything about them.
    archiving.archive_customers([world["甲"].pk, world["丙"].pk])


def archive_old_month(world):
    # 丁 stays live, but one old order is moved to the archive for its age.
    old = Order.objects.get(external_id="丁1")
    ArchivedOrder.objects.create(
        **{f.attname: getattr(old, f.attname) for f in Order._meta.concrete_fields}
    )
    old.delete()


@pytest.mark.parametrize("persona", ["admin_user", "staff", "staff2", "manager"])
def test_figures_with_the_archive_equal_live_plus_archived(world, persona, request):
    user = request.getfixturevalue(persona)
    before = figures(user, archive=False)

    archive_some(world)

    after = figures(user, archive=True)
    for name in DEFINITIONS:
        assert (name, after[name]) == (name, before[name])
    assert figures(user, archive=False) != before


def test_history_archived_for_its_age_is_counted_with_the_option(world, admin_user):
    history = [name for name, d in DEFINITIONS.items() if d["source"] != "customers"]
    before = figures(admin_user, archive=False)

    archive_some(world)
    archive_old_month(world)

    after = figures(admin_user, archive=True)
    for name in history:
        assert (name, after[name]) == (name, before[name])


def test_without_the_option_archived_records_are_left_out(world, admin_user):
    archive_some(world)
    rows = reporting.build_table(DEFINITIONS["order rows"], admin_user).rows
    assert [r[0] for r in rows] == ["丁0", "丁1", "乙0"]


def test_archived_records_of_customers_the_runner_may_not_see_stay_out(world, staff):
    archive_some(world)
    definition = {**DEFINITIONS["order rows"], "archive": True}
    assert [r[0] for r in reporting.build_table(definition, staff).rows] == ["乙0", "甲0", "甲1"]


def test_a_saved_report_remembers_include_archive(world, manager, client, verified_login):
    verified_login(client, manager)
    archive_some(world)
    data = {
        "source": "orders", "action": "save", "name": "All orders", "group_by_1": "channel",
        "agg_0_func": "sum", "agg_0_field": "amount", "archive": "on",
    }  # fmt: skip
    response = client.post(reverse("reports:create"), data)
    report = SavedReport.objects.get(name="All orders")
    assert response.status_code == 302
    assert report.definition["archive"] is True
    # The manager manages team 0: 甲 (archived, 150) and 乙 (live, 20).
    assert report.table(manager).rows == [
        ("Store", Decimal("120.00")),
        ("WeChat", Decimal("50.00")),
    ]
    page = client.get(reverse("reports:edit", args=[report.pk]))
    assert re.search(r'<input[^>]*name="archive"[^>]*checked', page.content.decode())


def test_the_description_says_the_archive_is_included(world, admin_user):
    table = reporting.build_table({**DEFINITIONS["orders by month"], "archive": True}, admin_user)
    assert ("Archive", "included") in table.filters
