"""Saved reports of the report builder: who may see them, and the figures they give whoever
runs them (always with the runner's own permissions)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from accounts.audit import Action, AuditEntry
from customers.models import Customer
from reports import reporting
from reports.models import SavedReport
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


BY_PROVINCE = {
    "source": "customers",
    "group_by": ["province"],
    "aggregates": [{"func": "count"}],
    "sort": {"key": "count", "desc": True},
}


@pytest.fixture
def customers(staff, staff2, teams):
    rows = [
        ("甲", "广东省", "active", staff, teams[0]),
        ("乙", "广东省", "lead", staff, teams[0]),
        ("丙", "上海市", "active", staff2, teams[1]),
        ("丁", "广东省", "active", staff2, teams[1]),
        ("戊", "", "churned", None, None),
    ]
    return [
        Customer.objects.create(display_name=n, province=p, status=s, owner=o, team=t)
        for n, p, s, o, t in rows
    ]


def test_a_grouped_report_counts_what_the_runner_may_see(customers, admin_user, staff, manager):
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)

    table = report.table(admin_user)
    assert [c.label for c in table.columns] == ["Province", "Count"]
    assert table.rows == [("广东省", 3), ("", 1), ("上海市", 1)]
    assert table.aggregated

    # Staff see only their own team's customers, whoever made the report.
    assert report.table(staff).rows == [("广东省", 2)]


def test_table_from_spec_needs_a_report_the_user_may_see(customers, manager, staff, staff2):
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)
    spec = {"kind": "report", "report": str(report.pk)}
    with pytest.raises(SavedReport.DoesNotExist):
        reporting.table_from_spec(spec, staff)

    report.shared_with_users.add(staff)
    assert reporting.table_from_spec(spec, staff).rows == [("广东省", 2)]

    team_group = staff2.groups.get(team__isnull=False)
    report.shared_with_groups.add(team_group)
    # Equal counts come in the order of the group's values.
    assert reporting.table_from_spec(spec, staff2).rows == [("上海市", 1), ("广东省", 1)]
    with pytest.raises(SavedReport.DoesNotExist):
        reporting.table_from_spec({"kind": "report", "report": "not-an-id"}, staff2)


def test_visible_to_lists_own_and_shared_reports_once(manager, staff, viewer, teams):
    own = SavedReport.objects.create(name="Mine", definition=BY_PROVINCE, owner=staff)
    shared = SavedReport.objects.create(name="Shared", definition=BY_PROVINCE, owner=manager)
    shared.shared_with_users.add(staff)
    shared.shared_with_groups.add(teams[0].group)  # staff is in this team too
    SavedReport.objects.create(name="Other", definition=BY_PROVINCE, owner=manager)
    inactive = make_user("gone", is_active=False)
    shared.shared_with_users.add(inactive)

    assert list(SavedReport.objects.visible_to(staff)) == [own, shared]
    assert list(SavedReport.objects.visible_to(viewer)) == [shared]
    assert list(SavedReport.objects.visible_to(inactive)) == []


def test_plain_rows_with_filters(customers, admin_user):
    definition = {
        "source": "customers",
        "columns": ["name", "province", "status"],
        "filters": [
            {"field": "status", "op": "in", "value": "active, Lead"},
            {"field": "province", "op": "ne", "value": "上海市"},
        ],
        "sort": {"key": "name", "desc": False},
    }
    table = reporting.build_table(definition, admin_user, title="Active")
    assert list(table.rows) == [
        ("丁", "广东省", "Active"),
        ("乙", "广东省", "Lead"),
        ("甲", "广东省", "Active"),
    ]


@pytest.mark.parametrize(
    "definition",
    [
        {"source": "nope", "columns": ["name"]},
        {"source": "customers", "columns": ["phone"]},
        {"source": "customers", "columns": ["email"]},
        {
            "source": "customers",
            "columns": ["name"],
            "filters": [{"field": "birthday", "op": "eq", "value": "x"}],
        },
        {
            "source": "customers",
            "columns": ["name"],
            "filters": [{"field": "status", "op": "gt", "value": "a"}],
        },
        {
            "source": "customers",
            "columns": ["name"],
            "filters": [{"field": "status", "op": "eq", "value": "x'; drop table"}],
        },
        {
            "source": "customers",
            "columns": ["name"],
            "sort": {"key": "pk) desc; --", "desc": False},
        },
        {
            "source": "orders",
            "group_by": ["channel"],
            "aggregates": [{"func": "sum", "field": "channel"}],
        },
        {
            "source": "orders",
            "columns": ["amount"],
            "filters": [{"field": "amount", "op": "gte", "value": "1e999"}],
        },
        {"source": "customers", "columns": []},
        "not a dict",
    ],
)
def test_invalid_definitions_are_refused(definition):
    with pytest.raises(ValidationError):
        reporting.validate_definition(definition)


# --- Orders and interactions --------------------------------------------------------------


@pytest.fixture
def orders(customers):
    from customers.models import Interaction, Order

    amounts = {"甲": ["100", "50"], "乙": ["20"], "丙": ["300"], "丁": ["7"]}
    by_name = {c.display_name: c for c in customers}
    for name, values in amounts.items():
        for i, amount in enumerate(values):
            Order.objects.create(
                customer=by_name[name],
                external_id=f"{name}{i}",
                amount=Decimal(amount),
                channel="wechat" if i else "store",
            )
    Interaction.objects.create(customer=by_name["甲"], kind="call", summary="Called")
    Interaction.objects.create(customer=by_name["丙"], kind="visit", summary="Visited")


def test_orders_and_interactions_are_those_of_visible_customers(orders, admin_user, staff):
    by_channel = {
        "source": "orders",
        "group_by": ["channel"],
        "aggregates": [{"func": "count"}, {"func": "sum", "field": "amount"}],
        "sort": {"key": "sum_amount", "desc": True},
    }
    assert reporting.build_table(by_channel, admin_user).rows == [
        ("Store", 4, Decimal("427.00")),
        ("WeChat", 1, Decimal("50.00")),
    ]
    assert reporting.build_table(by_channel, staff).rows == [
        ("Store", 2, Decimal("120.00")),
        ("WeChat", 1, Decimal("50.00")),
    ]
    kinds = {"source": "interactions", "columns": ["kind", "customer_name", "summary"]}
    assert list(reporting.build_table(kinds, staff).rows) == [("Call", "甲", "Called")]
    big = {
        "source": "orders",
        "columns": ["customer_name", "amount"],
        "filters": [
            {"field": "amount", "op": "gte", "value": "50"},
            {"field": "customer_province", "op": "eq", "value": "广东省"},
        ],
        "sort": {"key": "amount", "desc": False},
    }
    assert list(reporting.build_table(big, admin_user).rows) == [
        ("甲", Decimal("50.00")),
        ("甲", Decimal("100.00")),
    ]


def test_figures_of_customers_metrics_and_aggregates(orders, admin_user):
    definition = {
        "source": "customers",
        "group_by": ["province"],
        "aggregates": [
            {"func": "count"},
            {"func": "sum", "field": "revenue"},
            {"func": "avg", "field": "orders"},
            {"func": "max", "field": "revenue"},
        ],
        "filters": [{"field": "province", "op": "not_empty"}],
        "sort": {"key": "sum_revenue", "desc": True},
        "chart": "bar",
    }
    table = reporting.build_table(definition, admin_user)
    # 上海市: 丙 300. 广东省: 甲 150 (2 orders), 乙 20 (1), 丁 7 (1).
    assert table.rows == [
        ("上海市", 1, Decimal("300.00"), Decimal("1.00"), Decimal("300.00")),
        ("广东省", 3, Decimal("177.00"), Decimal("1.33"), Decimal("150.00")),
    ]
    assert table.chart.categories == ["上海市", "广东省"]
    assert table.chart.series[0] == ("Count", [1.0, 3.0])


# --- Pages ----------------------------------------------------------------------------------


@pytest.fixture
def manager_client(client, manager, verified_login, settings):
    verified_login(client, manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def builder_post(**fields):
    data = {"source": "customers", "action": "run"}
    data.update(fields)
    return data


def test_builder_runs_a_report_on_screen(manager_client, customers):
    response = manager_client.post(
        reverse("reports:create"), builder_post(group_by_1="province", agg_0_func="count")
    )
    assert response.status_code == 200
    result = response.context["result"]
    # The manager manages team 0: 甲 and 乙.
    assert result["rows"] == [("广东省", 2)]
    assert not SavedReport.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {
            "filter_0_field": "status",
            "filter_0_op": "gt",
            "filter_0_value": "x",
            "columns": ["name"],
        },
        {
            "filter_0_field": "created_at",
            "filter_0_op": "on",
            "filter_0_value": "yesterday",
            "columns": ["name"],
        },
        {
            "filter_0_field": "phone",
            "filter_0_op": "eq",
            "filter_0_value": "138",
            "columns": ["name"],
        },
        {"columns": ["email"]},
        {"group_by_1": "tags"},
        {"agg_0_func": "sum", "agg_0_field": "created_at", "group_by_1": "status"},
        {"columns": ["name"], "sort_key": "count"},
        {"columns": ["name"], "limit": "0"},
        {"columns": ["name"], "chart": "bar"},
        {"source": "'; drop table customers_customer; --", "columns": ["name"]},
        {},
    ],
)
def test_bad_builder_input_is_a_form_error(manager_client, fields):
    response = manager_client.post(reverse("reports:create"), builder_post(**fields))
    assert response.status_code == 400
    assert response.context["form"].errors


def test_saving_needs_a_unique_name_and_is_audited(manager_client, manager, customers):
    data = builder_post(action="save", name="By province", group_by_1="province")
    response = manager_client.post(reverse("reports:create"), data)
    report = SavedReport.objects.get(owner=manager)
    assert response.status_code == 302 and response.url == report.get_absolute_url()
    assert report.definition["group_by"] == ["province"]
    assert AuditEntry.objects.filter(action=Action.REPORT_CREATE, object_id=str(report.pk)).exists()

    again = manager_client.post(reverse("reports:create"), data)
    assert again.status_code == 400
    assert "name" in again.context["form"].errors
    nameless = manager_client.post(reverse("reports:create"), {**data, "name": ""})
    assert nameless.status_code == 400


def test_sharing_with_a_team_runs_with_each_viewers_permissions(
    manager_client, manager, staff2, teams, client, verified_login, customers
):
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)
    response = manager_client.post(
        reverse("reports:share", args=[report.pk]), {"shared_with_groups": [teams[1].group_id]}
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.filter(action=Action.REPORT_SHARE).latest("seq")
    assert entry.data["groups"] == [teams[1].group.name]

    other = verified_login(type(client)(), staff2)
    page = other.get(reverse("reports:detail", args=[report.pk]))
    assert page.status_code == 200
    # staff2 sees their own customers (丙, 丁), not the manager's team's.
    assert page.context["result"]["rows"] == [("上海市", 1), ("广东省", 1)]
    assert other.post(reverse("reports:delete", args=[report.pk])).status_code == 403
    assert other.get(reverse("reports:index")).context["reports"].get() == report


def test_editing_and_deleting_are_audited(manager_client, manager, customers):
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)
    form = manager_client.get(reverse("reports:edit", args=[report.pk])).context["form"]
    assert form.initial["group_by_1"] == "province"
    response = manager_client.post(
        reverse("reports:edit", args=[report.pk]),
        builder_post(action="save", name="By status", group_by_1="status"),
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert (report.name, report.definition["group_by"]) == ("By status", ["status"])
    entry = AuditEntry.objects.filter(action=Action.REPORT_UPDATE).latest("seq")
    assert entry.data["before"]["name"] == "By province"

    assert manager_client.post(reverse("reports:delete", args=[report.pk])).status_code == 302
    assert not SavedReport.objects.exists()
    assert AuditEntry.objects.filter(action=Action.REPORT_DELETE).exists()


def test_a_report_downloads_as_csv(manager_client, manager, customers):
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)
    response = manager_client.get(reverse("reports:export", args=[report.pk]) + "?format=csv")
    assert response.status_code == 200
    assert "广东省,2" in response.content.decode("utf-8-sig")


def test_demo_reports_are_made_once_and_run(orders, manager):
    from reports.demo import create_demo_reports

    first = create_demo_reports(manager=manager)
    again = create_demo_reports(manager=manager)
    assert [r.pk for r in first] == [r.pk for r in again]
    assert SavedReport.objects.filter(owner=manager).count() == len(first) == 4
    by_province = SavedReport.objects.get(owner=manager, name="Customers by province")
    table = by_province.table(manager)
    # The manager's team: 甲 (150) and 乙 (20), both in 广东省.
    assert table.rows == [("广东省", 2, Decimal("170.00"))]
    for report in first:
        assert report.table(manager).columns


def test_a_report_whose_fields_are_gone_is_explained_not_a_crash(manager_client, manager):
    report = SavedReport.objects.create(
        name="Old", definition={"source": "customers", "columns": ["fax"]}, owner=manager
    )
    page = manager_client.get(report.get_absolute_url())
    assert page.status_code == 200 and page.context["problem"]
    download = manager_client.get(reverse("reports:export", args=[report.pk]) + "?format=csv")
    assert download.status_code == 302


def test_a_large_report_is_built_in_the_background_for_the_user(
    manager_client, manager, customers, settings
):
    from reports.models import GeneratedFile

    settings.REPORT_DIRECT_EXPORT_ROWS = 0  # the manager sees one row
    report = SavedReport.objects.create(name="By province", definition=BY_PROVINCE, owner=manager)
    too_big = manager_client.get(reverse("reports:export", args=[report.pk]) + "?format=xlsx")
    assert too_big.status_code == 302 and too_big.url == report.get_absolute_url()

    response = manager_client.post(
        reverse("reports:generate", args=[report.pk]), {"format": "xlsx"}
    )
    assert response.status_code == 302 and response.url == reverse("files:list")
    generated = GeneratedFile.objects.get()
    assert generated.owner == manager and generated.format == "xlsx"
    assert generated.spec == {"kind": "report", "report": str(report.pk)}
