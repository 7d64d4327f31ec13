"""The pivot: figures and totals against hand-computed fixtures, links to the customer list,
permission scoping, and the page and its exports."""

import datetime
import io
import subprocess
import zoneinfo
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from django.http import QueryDict
from django.urls import reverse
from django.utils import translation

from accounts.audit import Action, AuditEntry
from customers.models import Customer, Order
from reports import analysis
from reports.models import CustomerMetrics, SavedReport

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def local(*args):
    return datetime.datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def shop(staff, staff2, teams):
    """Five customers and their orders; the figures of the tests below are worked out from
    this table by hand.

    name  province  source    status   tags        created (Shanghai)  orders (amounts)
    A     广东省     store     active   vip, new    2025-01-15          100, 200 (first 2025-02-01)
    B     广东省     expo      lead     vip         2025-02-10          50 (2025-04-01)
    C     上海市     store     active   -           2025-04-20          - (and no metrics row)
    D     -         store     churned  new         2025-04-30 23:30    300 (2025-05-01)
    E     上海市     web_form  active   vip         2025-01-01 00:30    10, 20, 30 (from 01-10)

    A and B belong to `staff` (team 0), C and E to `staff2` (team 1), D to nobody. E was
    created on 2024-12-31 in UTC but 2025-01-01 in Shanghai, where periods are counted.
    """
    specs = {
        "A": ("广东省", "store", "active", ["vip", "new"], local(2025, 1, 15), staff, teams[0]),
        "B": ("广东省", "expo", "lead", ["vip"], local(2025, 2, 10), staff, teams[0]),
        "C": ("上海市", "store", "active", [], local(2025, 4, 20), staff2, teams[1]),
        "D": ("", "store", "churned", ["new"], local(2025, 4, 30, 23, 30), None, None),
        "E": ("上海市", "web_form", "active", ["vip"], local(2025, 1, 1, 0, 30), staff2, teams[1]),
    }
    customers = {}
    for name, (province, source, status, tags, created, owner, team) in specs.items():
        customers[name] = Customer.objects.create(
            display_name=name,
            province=province,
            source=source,
            status=status,
            tags=tags,
            created_at=created,
            owner=owner,
            team=team,
        )
    orders = {
        "A": [("100", local(2025, 2, 1)), ("200", local(2025, 3, 5))],
        "B": [("50", local(2025, 4, 1))],
        "D": [("300", local(2025, 5, 1))],
        "E": [("10", local(2025, 1, 10)), ("20", local(2025, 2, 10)), ("30", local(2025, 3, 10))],
    }
    for name, rows in orders.items():
        for i, (amount, when) in enumerate(rows):
            Order.objects.create(
                customer=customers[name],
                external_id=f"{name}-{i}",
                amount=Decimal(amount),
                ordered_at=when,
            )
    CustomerMetrics.objects.filter(customer=customers["C"]).delete()
    return customers


def pivot_of(query, user):
    form, _filters, pivot = analysis.run_pivot(QueryDict(query), user)
    assert pivot is not None, form.errors
    return pivot


def grid(pivot):
    """{row label: {column label: value}} with "Total" row and column."""
    result = {}
    for label, total, cells in pivot.table_rows():
        result[label] = {
            col: cell.value if cell else None
            for col, cell in zip(pivot.col_labels, cells, strict=True)
        }
        result[label]["Total"] = total.value
    result["Total"] = {
        col: cell.value for col, cell in zip(pivot.col_labels, pivot.column_totals(), strict=True)
    }
    result["Total"]["Total"] = pivot.total.value
    return result


def test_customers_by_province_and_channel(shop, admin_user):
    pivot = pivot_of("rows=province&cols=source&measure=customers", admin_user)
    assert pivot.col_labels == ["Store", "Expo", "Web form"]
    assert grid(pivot) == {
        "广东省": {"Store": 1, "Expo": 1, "Web form": None, "Total": 2},
        "上海市": {"Store": 1, "Expo": None, "Web form": 1, "Total": 2},
        "Not set": {"Store": 1, "Expo": None, "Web form": None, "Total": 1},
        "Total": {"Store": 3, "Expo": 1, "Web form": 1, "Total": 5},
    }


def test_revenue_and_ratios_are_computed_from_sums(shop, admin_user):
    revenue = grid(pivot_of("rows=province&cols=source&measure=revenue", admin_user))
    assert revenue["广东省"] == {"Store": 300, "Expo": 50, "Web form": None, "Total": 350}
    # C has no metrics row: a customer without orders, not a missing one.
    assert revenue["上海市"] == {"Store": 0, "Expo": None, "Web form": 60, "Total": 60}
    assert revenue["Total"] == {"Store": 600, "Expo": 50, "Web form": 60, "Total": 710}

    aov = grid(pivot_of("rows=province&cols=source&measure=average_order_value", admin_user))
    assert aov["广东省"]["Total"] == Decimal("116.67")  # 350 / 3 orders
    assert aov["上海市"]["Store"] is None  # no orders: no average
    assert aov["Total"]["Store"] == Decimal("200.00")  # 600 / 3, not the mean of 150 and 300
    assert aov["Total"]["Total"] == Decimal("101.43")  # 710 / 7

    ltv = grid(pivot_of("rows=province&measure=lifetime_value", admin_user))
    assert ltv["广东省"]["Total"] == Decimal("175.00")
    assert ltv["Total"]["Total"] == Decimal("142.00")  # 710 / 5 customers
    frequency = grid(pivot_of("rows=province&measure=purchase_frequency", admin_user))
    assert frequency["上海市"]["Total"] == Decimal("1.50")  # 3 orders / 2 customers
    assert frequency["Total"]["Total"] == Decimal("1.40")  # 7 / 5
    orders = grid(pivot_of("rows=status&measure=orders", admin_user))
    assert orders == {
        "Lead": {"Orders": 1, "Total": 1},
        "Active": {"Orders": 5, "Total": 5},
        "Churned": {"Orders": 1, "Total": 1},
        "Total": {"Orders": 7, "Total": 7},
    }


def test_a_customer_counts_under_each_tag_but_once_in_totals(shop, admin_user):
    pivot = pivot_of("rows=tag&cols=status&measure=customers", admin_user)
    assert grid(pivot) == {
        "vip": {"Active": 2, "Lead": 1, "Churned": None, "Total": 3},
        "new": {"Active": 1, "Lead": None, "Churned": 1, "Total": 2},
        "No tag": {"Active": 1, "Lead": None, "Churned": None, "Total": 1},
        # 5 customers, not 3 + 2 + 1: A has two tags.
        "Total": {"Active": 3, "Lead": 1, "Churned": 1, "Total": 5},
    }
    revenue = grid(pivot_of("rows=status&cols=tag&measure=revenue", admin_user))
    assert revenue["Active"] == {"vip": 360, "new": 300, "No tag": 0, "Total": 360}
    assert revenue["Total"] == {"vip": 410, "new": 600, "No tag": 0, "Total": 710}
    one = grid(pivot_of("rows=tag&measure=customers", admin_user))
    assert one["Total"] == {"Customers": 5, "Total": 5}


def test_sign_up_and_first_purchase_periods_in_local_time(shop, admin_user):
    quarters = grid(pivot_of("rows=created_quarter&measure=customers", admin_user))
    assert quarters == {
        "2025 Q1": {"Customers": 3, "Total": 3},  # A, B and E (2024-12-31 in UTC)
        "2025 Q2": {"Customers": 2, "Total": 2},
        "Total": {"Customers": 5, "Total": 5},
    }
    months = pivot_of("rows=created_month&cols=created_year&measure=customers", admin_user)
    assert months.row_labels == ["2025-01", "2025-02", "2025-04"]
    assert grid(months)["2025-04"] == {"2025": 2, "Total": 2}
    first = grid(pivot_of("rows=first_purchase_month&measure=revenue", admin_user))
    assert first == {
        "2025-01": {"Revenue": 60, "Total": 60},
        "2025-02": {"Revenue": 300, "Total": 300},
        "2025-04": {"Revenue": 50, "Total": 50},
        "2025-05": {"Revenue": 300, "Total": 300},
        "Not set": {"Revenue": 0, "Total": 0},
        "Total": {"Revenue": 710, "Total": 710},
    }


def test_filters_and_permissions_scope_every_figure(shop, admin_user, staff, viewer, staff2):
    active = grid(pivot_of("rows=province&measure=customers&status=active", admin_user))
    assert active == {
        "上海市": {"Customers": 2, "Total": 2},
        "广东省": {"Customers": 1, "Total": 1},
        "Total": {"Customers": 3, "Total": 3},
    }
    # Staff see their own customers, the viewer their team's: A and B in both cases.
    for user in (staff, viewer):
        mine = grid(pivot_of("rows=tag&cols=source&measure=revenue", user))
        assert mine["Total"] == {"Store": 300, "Expo": 50, "Total": 350}
        assert mine["vip"] == {"Store": 300, "Expo": 50, "Total": 350}
    assert pivot_of("rows=province&measure=customers", staff2).total.value == 2


def test_cells_link_to_the_customer_list_filtered_to_them(shop, admin_user):
    pivot = pivot_of(
        "rows=province&cols=created_quarter&measure=customers&status=active", admin_user
    )

    def params(cell):
        url = urlsplit(cell.link)
        assert url.path == reverse("customers:list")
        return parse_qs(url.query)

    q1 = pivot.col_keys[0]
    assert params(pivot.cells[("广东省", q1)]) == {
        "status": ["active"],
        "province": ["广东省"],
        "created_after": ["2025-01-01"],
        "created_before": ["2025-03-31"],
    }
    assert params(pivot.total) == {"status": ["active"]}
    everyone = pivot_of("rows=province&measure=customers", admin_user)
    assert params(everyone.row_totals[None]) == {"province": ["none"]}

    tags = pivot_of("rows=tag&measure=customers&tags=vip", admin_user)
    assert params(tags.row_totals["new"]) == {"tags": ["vip,new"]}
    # The list cannot select customers without tags: that cell has no link.
    assert pivot_of("rows=tag&measure=customers", admin_user).row_totals[None].link == ""

    first = pivot_of("rows=first_purchase_month&measure=customers", admin_user)
    assert params(first.row_totals[None]) == {"has_orders": ["false"]}
    narrowed = pivot_of("rows=created_month&measure=customers&created_after=2025-01-10", admin_user)
    assert ("Created between (from)", "2025-01-10") in narrowed.filters
    january = narrowed.row_totals[narrowed.row_keys[0]]
    assert params(january)["created_after"] == ["2025-01-10"]
    assert params(january)["created_before"] == ["2025-01-31"]


def test_invalid_choices_are_form_errors(client, manager, verified_login):
    verified_login(client, manager)
    for query in ("rows=nope", "rows=province&cols=province", "rows=province&measure=x"):
        response = client.get(reverse("analysis:pivot") + "?" + query)
        assert response.status_code == 200
        assert response.context["pivot"] is None
        assert response.context["form"].errors


def test_pivot_page_shows_the_table_and_chart_data(client, manager, shop, verified_login):
    verified_login(client, manager)
    response = client.get(reverse("analysis:pivot") + "?rows=province&cols=source")
    assert response.status_code == 200
    page = response.content.decode()
    assert "广东省" in page and 'id="results-charts"' in page
    assert 'form="list-form"' not in page  # the search box is one of this page's filters
    # The manager manages team 0: A and B.
    assert response.context["pivot"].total.value == 2


def test_pivot_needs_the_analysis_permission(client, staff, viewer):
    for user in (staff, viewer):
        client.force_login(user)
        assert client.get(reverse("analysis:pivot")).status_code == 403


def test_export_to_excel_is_audited(client, admin_user, shop, verified_login, settings):
    verified_login(client, admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    url = reverse("analysis:export") + "?rows=tag&cols=status&measure=customers&format=xlsx"
    response = client.get(url)
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    values = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    header = next(i for i, row in enumerate(values) if row[0] == "Tag")
    # Statuses in their own order (lead, prospect, active, ...), those with customers only.
    assert values[header][:5] == ["Tag", "Lead", "Active", "Churned", "Total"]
    assert values[header + 1][:5] == ["vip", 1, 2, None, 3]
    totals = next(row for row in values[header + 1 :] if row[0] == "Total")
    assert totals[:5] == ["Total", 1, 3, 1, 5]
    entry = AuditEntry.objects.filter(action=Action.EXPORT).latest("seq")
    assert entry.data["what"] == "analysis" and entry.data["format"] == "xlsx"


def test_export_needs_the_export_permission(client, shop, teams):
    from tests.conftest import make_user

    analyst = make_user("analyst", teams=[teams[0]])
    from django.contrib.auth.models import Permission

    analyst.user_permissions.add(
        Permission.objects.get(codename="view_analysis"),
        Permission.objects.get(codename="view_customer"),
    )
    client.force_login(analyst)
    assert client.get(reverse("analysis:pivot") + "?rows=province").status_code == 200
    url = reverse("analysis:export") + "?rows=province&format=xlsx"
    assert client.get(url).status_code == 403


def test_saved_analysis_runs_with_the_viewer_permissions(shop, manager, staff):
    report = SavedReport.objects.create(
        name="Revenue by tag",
        kind=SavedReport.Kind.ANALYSIS,
        definition={"params": {"rows": ["tag"], "measure": ["revenue"]}},
        owner=manager,
    )
    report.shared_with_users.add(staff)
    table = report.table(staff)
    assert table.title == "Revenue by tag"
    assert table.rows == [["vip", Decimal("350.00")], ["new", Decimal("300.00")]]
    assert table.totals == ["Total", Decimal("350.00")]
    spec = {"kind": "analysis", "params": report.definition["params"]}
    assert analysis.table_from_spec(spec, staff).totals == ["Total", Decimal("350.00")]


def test_age_bands_and_segments(shop, admin_user):
    year = datetime.date.today().year
    for name, born, segment in [
        ("A", year - 30, "champions"),
        ("C", year - 50, None),
        ("D", None, "lost"),
        ("E", year - 30, "loyal"),
    ]:
        customer = shop[name]
        customer.birthday = datetime.date(born, 6, 1) if born else None
        customer.save()
        CustomerMetrics.objects.filter(customer=customer).update(segment=segment)
    pivot = pivot_of("rows=age_band&cols=segment&measure=customers", admin_user)
    assert pivot.col_labels == ["Champions", "Loyal", "Lost", "Not set"]
    assert grid(pivot) == {
        "25–34": {"Champions": 1, "Loyal": 1, "Lost": None, "Not set": None, "Total": 2},
        "45–54": {"Champions": None, "Loyal": None, "Lost": None, "Not set": 1, "Total": 1},
        "Unknown": {"Champions": None, "Loyal": None, "Lost": 1, "Not set": 1, "Total": 2},
        "Total": {"Champions": 1, "Loyal": 1, "Lost": 1, "Not set": 2, "Total": 5},
    }
    cell = pivot.cells[("unknown", None)]
    assert parse_qs(urlsplit(cell.link).query) == {"age_band": ["unknown"], "segment": ["none"]}
    # The list's own filters narrow the pivot: women and men were not recorded here.
    assert pivot_of("rows=age_band&measure=customers&gender=none", admin_user).total.value == 5
    assert pivot_of("rows=age_band&measure=customers&segment=none", admin_user).total.value == 2


def test_saving_a_pivot_and_opening_it_as_someone_it_is_shared_with(
    client, manager, staff, shop, verified_login, english
):
    verified_login(client, manager)
    query = "rows=tag&measure=revenue&status=active"
    response = client.post(reverse("analysis:save"), {"query": query, "name": "Active by tag"})
    report = SavedReport.objects.get(owner=manager)
    assert response.status_code == 302 and response.url == report.get_absolute_url()
    assert report.kind == "analysis"
    assert report.definition == {
        "params": {"rows": ["tag"], "measure": ["revenue"], "status": ["active"]}
    }
    assert AuditEntry.objects.filter(action=Action.REPORT_CREATE).exists()
    again = client.post(reverse("analysis:save"), {"query": query, "name": "Active by tag"})
    assert again.status_code == 302
    assert SavedReport.objects.count() == 1

    report.shared_with_users.add(staff)
    client.force_login(staff)  # staff may not use the analysis page, but may run this
    page = client.get(report.get_absolute_url())
    assert page.status_code == 200
    # staff's active customers: A only (vip and new; 300), tags of equal size by name.
    assert page.context["result"]["rows"] == [
        ["new", Decimal("300.00")],
        ["vip", Decimal("300.00")],
    ]
    assert page.context["result"]["table"].totals == ["Total", Decimal("300.00")]


def test_export_to_pdf_has_the_chinese_names_and_totals(
    client, admin_user, shop, verified_login, settings, tmp_path
):
    verified_login(client, admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    url = reverse("analysis:export") + "?rows=province&cols=source&measure=revenue&format=pdf"
    response = client.get(url)
    assert response.status_code == 200
    path = tmp_path / "pivot.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "广东省" in text and "上海市" in text
    assert "710.00" in text  # the grand total
