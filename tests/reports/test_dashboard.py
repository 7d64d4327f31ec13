"""The dashboard: hand-counted figures for each persona, the links behind them, and the
summary tables' triggers against a recount from scratch."""

import datetime
import threading
import time
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse
from django.utils import timezone, translation

from accounts import permissions
from customers import imports, merging
from customers.models import Customer, Order
from reports.dashboard import dashboard_for, measure_dashboard
from reports.models.summaries import SUMMARY_MODELS, rebuild_summaries
from tests.customers.import_helpers import csv_bytes, run_import

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
TODAY = datetime.date(2026, 3, 15)


def at(*args):
    return datetime.datetime(*args, tzinfo=ZONE)


def make(owner, team, created, **fields):
    fields.setdefault("display_name", "客户")
    return Customer.objects.create(owner=owner, team=team, created_at=created, **fields)


def order(customer, when, amount, currency="CNY"):
    order.count = getattr(order, "count", 0) + 1
    return Order.objects.create(
        customer=customer,
        external_id=f"SO-{order.count}",
        ordered_at=when,
        amount=Decimal(amount),
        currency=currency,
    )


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def book(admin_user, manager, staff, staff2, viewer, auditor, teams):
    """Five customers and their orders; the figures in the tests below are counted by hand.

    c3 was created at half past midnight on 1 March in Shanghai (still February in UTC), so
    it is new in March. Months shown: April 2025 to March 2026; the last 30 days: 14 February
    to 15 March 2026.
    """
    east, south = teams
    c1 = make(staff, east, at(2026, 3, 2, 10), source="store", province="上海市",
              status="active", tags=["vip", "微信"])  # fmt: skip
    c2 = make(staff, east, at(2026, 2, 10, 9), source="web_form", province="上海市",
              status="lead", tags=["vip"])  # fmt: skip
    c3 = make(manager, east, at(2026, 3, 1, 0, 30), source="expo", status="prospect")
    c4 = make(staff2, south, at(2026, 1, 5, 12), source="store", province="广东省",
              status="active", tags=["vip"])  # fmt: skip
    c5 = make(None, None, at(2025, 3, 20, 8), source="other", province="北京市", status="churned")
    order(c1, at(2026, 3, 10, 12), "100.00")
    order(c1, at(2026, 2, 20, 12), "50.00")
    order(c1, at(2026, 3, 12, 12), "30.00", currency="USD")
    order(c2, at(2026, 2, 14, 0, 10), "20.00")  # the first of the 30 days, just
    order(c2, at(2026, 2, 13, 23, 50), "7.00")  # the day before them
    order(c4, at(2026, 3, 14, 12), "200.00")
    order(c4, at(2026, 1, 6, 12), "10.00")
    order(c5, at(2025, 3, 21, 12), "999.00")
    # c4 is shared with staff (outside their reach), c2 with staff (theirs already: counted
    # once), c1 with staff2's team.
    permissions.share(c4, staff, "view")
    permissions.share(c2, staff, "change")
    permissions.share(c1, south, "view")
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5}


def figures(board):
    return {
        "total": board.total,
        "new": (board.new_this_month, board.new_last_month),
        "active": board.active,
        "revenue": (board.revenue_30_days, board.orders_30_days),
        "buyers": (board.buyers, board.repeat_buyers),
    }


def test_administrator_sees_every_customer(book, admin_user):
    board = dashboard_for(admin_user, today=TODAY)
    assert figures(board) == {
        "total": 5,
        "new": (2, 1),
        "active": 2,
        "revenue": (Decimal("370.00"), 4),
        "buyers": (4, 3),
    }
    assert board.repurchase_rate == 75
    assert board.change == 100
    assert [(r["label"], r["count"]) for r in board.provinces] == [
        ("上海市", 2), ("Not specified", 1), ("北京市", 1), ("广东省", 1),
    ]  # fmt: skip
    assert [r["count"] for r in board.funnel] == [1, 1, 2, 0, 1]
    assert [(r["label"], r["count"]) for r in board.tags] == [("vip", 3), ("微信", 1)]
    revenue = {r["label"]: (r["orders"], r["amount"]) for r in board.revenue}
    assert len(revenue) == 12 and "2025-03" not in revenue
    assert revenue["2026-03"] == (2, Decimal("300.00"))
    assert revenue["2026-02"] == (3, Decimal("77.00"))
    assert revenue["2026-01"] == (1, Decimal("10.00"))
    assert revenue["2025-04"] == (0, 0)
    sources = [value for value, _label in board.signup_sources]
    signups = {
        row["label"]: dict(zip(sources, row["counts"], strict=True)) for row in board.signups
    }
    assert signups["2026-03"]["store"] == 1 and signups["2026-03"]["expo"] == 1
    assert sum(signups["2026-03"].values()) == 2
    assert signups["2026-02"]["web_form"] == 1 and signups["2026-01"]["store"] == 1
    assert "2025-03" not in signups  # c5: counted in the total, not in the chart's months


def test_manager_sees_their_teams_customers(book, manager):
    board = dashboard_for(manager, today=TODAY)
    assert figures(board) == {
        "total": 3,
        "new": (2, 1),
        "active": 1,
        "revenue": (Decimal("170.00"), 3),
        "buyers": (2, 2),
    }
    assert [(r["label"], r["count"]) for r in board.tags] == [("vip", 2), ("微信", 1)]


def test_staff_see_their_own_and_shared_customers_once(book, staff):
    board = dashboard_for(staff, today=TODAY)
    assert figures(board) == {
        "total": 3,
        "new": (1, 1),
        "active": 2,
        "revenue": (Decimal("370.00"), 4),
        "buyers": (3, 3),
    }
    assert [(r["label"], r["count"]) for r in board.provinces] == [("上海市", 2), ("广东省", 1)]
    assert [(r["label"], r["count"]) for r in board.tags] == [("vip", 3), ("微信", 1)]
    revenue = {r["label"]: (r["orders"], r["amount"]) for r in board.revenue}
    assert revenue["2026-01"] == (1, Decimal("10.00"))  # c4's, shared


def test_staff_of_another_team_see_what_is_shared_with_their_team(book, staff2):
    board = dashboard_for(staff2, today=TODAY)
    assert figures(board) == {
        "total": 2,
        "new": (1, 0),
        "active": 2,
        "revenue": (Decimal("350.00"), 3),
        "buyers": (2, 2),
    }
    assert board.change is None


def test_users_who_see_no_customers_get_zeros(book, auditor):
    board = dashboard_for(auditor, today=TODAY)
    assert figures(board)["total"] == 0 and board.repurchase_rate is None
    assert board.provinces == [] and board.tags == []


@pytest.mark.parametrize("persona", ["admin_user", "manager", "staff", "staff2", "viewer"])
def test_the_total_is_the_number_of_customers_the_user_may_see(book, persona, request):
    user = request.getfixturevalue(persona)
    assert dashboard_for(user).total == permissions.visible_customers(user).count()


def test_page_links_every_figure_to_the_filtered_list(book, staff_client):
    response = staff_client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/customers/?province=%E4%B8%8A%E6%B5%B7%E5%B8%82"' in html
    assert 'href="/customers/?status=active"' in html
    assert 'href="/customers/?tags=vip"' in html
    charts = response.context["charts"]
    assert {c["id"] for c in charts} == {
        "chart-signups", "chart-provinces", "chart-revenue", "chart-funnel", "chart-tags",
    }  # fmt: skip
    assert 'id="dashboard-charts"' in html


def test_blank_province_links_to_customers_without_one(book, admin_user):
    board = dashboard_for(admin_user, today=TODAY)
    blank = next(r for r in board.provinces if r["label"] == "Not specified")
    assert blank["link"] == "/customers/?province=none"


def test_month_links_cover_the_whole_month(book, admin_user):
    board = dashboard_for(admin_user, today=TODAY)
    february = next(r for r in board.signups if r["label"] == "2026-02")
    assert february["link"] == "/customers/?created_after=2026-02-01&created_before=2026-02-28"
    web_form = [v for v, _l in board.signup_sources].index("web_form")
    assert february["links"][web_form] == (
        "/customers/?source=web_form&created_after=2026-02-01&created_before=2026-02-28"
    )


def test_list_behind_a_month_link_has_that_months_customers(
    book, admin_user, verified_login, client
):
    verified_login(client, admin_user)
    response = client.get(
        "/customers/", {"created_after": "2026-03-01", "created_before": "2026-03-31"}
    )
    names = {c.pk for c in response.context["page"].items}
    assert names == {book["c1"].pk, book["c3"].pk}


def test_dashboard_is_only_for_signed_in_users(client):
    response = client.get(reverse("dashboard:index"))
    assert response.status_code == 302 and "login" in response["Location"]


# --- The triggers against a rebuild --------------------------------------------------------


def snapshot():
    """Every summary table as {key: figures}, without empty buckets."""
    tables = {}
    for model in SUMMARY_MODELS:
        names = [f.column for f in model._meta.concrete_fields if f.column != "id"]
        rows = {}
        for row in model.objects.values_list(*names):
            key, values = row[: -_figures(model)], row[-_figures(model) :]
            if any(values):
                rows[key] = values
        tables[model.__name__] = rows
    return tables


def _figures(model):
    return {"DashboardRevenue": 2, "DashboardBuyers": 2}.get(model.__name__, 1)


def test_triggers_agree_with_a_rebuild(book, admin_user, manager, staff, staff2, teams):
    east, south = teams
    c1, c2, c3, c4 = book["c1"], book["c2"], book["c3"], book["c4"]
    # Inserts, one by one and in bulk.
    more = Customer.objects.bulk_create(
        [Customer(display_name=f"批量{i}", owner=staff, team=east, source="import",
                  province="浙江省", tags=["批量", "vip"] if i % 2 else []) for i in range(6)]
    )  # fmt: skip
    for i, customer in enumerate(more):
        order(customer, at(2026, 3, 1 + i, 9), f"{10 + i}.00")
    order(more[0], at(2026, 3, 3, 9), "5.00")
    # Updates: owner (with orders), team, status, province, tags; in bulk.
    c1.owner = manager
    c1.save()
    c4.team = east
    c4.save()
    Customer.objects.filter(pk=c2.pk).update(status="active", province="江苏省", tags=["new"])
    Customer.objects.filter(pk__in=[c.pk for c in more[:3]]).update(owner=staff2, team=south)
    Customer.objects.filter(source="import").update(status="inactive")
    # Orders changed: amount, time, moved to another customer; deleted.
    first = c3.orders.first() or order(c3, at(2026, 3, 5, 9), "1.00")
    Order.objects.filter(pk=first.pk).update(amount=Decimal("15.50"), ordered_at=at(2026, 2, 1))
    Order.objects.filter(customer=c4, amount=Decimal("10.00")).update(customer=c3)
    Order.objects.filter(customer=more[1]).delete()
    # Deletes: a customer with orders, and several at once.
    c2.delete()
    Customer.objects.filter(pk__in=[c.pk for c in more[4:]]).delete()
    # What a merge does to the tables: the merged customer's orders move to the survivor, and
    # it is deleted (merging.merge_customers, in the test below).
    Order.objects.filter(customer=more[3]).update(customer=more[2])
    Customer.objects.filter(pk=more[3].pk).delete()
    # A user deleted: their customers lose their owner (ON DELETE SET NULL).
    staff2.delete()

    by_triggers = snapshot()
    rebuild_summaries()
    assert snapshot() == by_triggers
    assert by_triggers["DashboardBuyers"]  # something was counted
    # The deleted customers' owners were only needed during the deleting statements.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM reports_dashboarddeleted")
        assert cursor.fetchone()[0] == 0


def test_deleting_a_customer_removes_their_orders_and_purchases(book, admin_user):
    before = dashboard_for(admin_user, today=TODAY)
    book["c4"].delete()
    after = dashboard_for(admin_user, today=TODAY)
    assert after.total == before.total - 1
    assert after.revenue_30_days == before.revenue_30_days - 200
    assert (after.buyers, after.repeat_buyers) == (before.buyers - 1, before.repeat_buyers - 1)
    assert [r["count"] for r in after.tags] == [2, 1]


def test_moving_a_customer_to_another_owner_moves_their_revenue(book, staff, manager):
    Customer.objects.filter(pk=book["c1"].pk).update(owner=manager)
    board = dashboard_for(staff, today=TODAY)
    assert board.revenue_30_days == Decimal("220.00")  # c2's 20 and c4's 200 (shared)
    assert (board.buyers, board.repeat_buyers) == (2, 2)  # c2 and c4 ordered twice each


def test_measure_dashboard_reports_each_user(book):
    results = measure_dashboard(("admin", "manager", "staff"), runs=2)
    assert results["admin"]["customers"] == 5
    assert results["staff"]["customers"] == 3
    assert all(r["median_ms"] > 0 for r in results.values())


def test_a_merge_keeps_the_summaries_right(book, admin_user):
    survivor, merged = book["c1"], book["c2"]
    merging.merge_customers(
        survivor=survivor,
        merged=merged,
        user=admin_user,
        survivor_version=survivor.version,
        merged_version=merged.version,
    )
    by_triggers = snapshot()
    board = dashboard_for(admin_user, today=TODAY)
    # c2 and its two orders went into c1: buyers c1, c4, c5; c5 ordered once.
    assert (board.total, board.buyers, board.repeat_buyers) == (4, 3, 2)
    assert board.revenue_30_days == Decimal("370.00")
    rebuild_summaries()
    assert snapshot() == by_triggers


def test_an_import_and_its_revert_are_counted(manager):
    rows = [
        ["王芳", "13900139000", "", "", "星光科技", "Active", "女", "门店", "VIP，新客", "C1"],
        ["李娜", "13700137000", "", "", "", "Lead", "女", "门店", "VIP", "C2"],
        ["张伟", "13800138000", "", "", "", "Lead", "男", "", "", "C3"],
    ]
    job, outcome = run_import(manager, csv_bytes(rows))
    assert outcome.created == 3
    board = dashboard_for(manager)
    assert (board.total, board.new_this_month, board.active) == (3, 3, 1)
    assert [(r["label"], r["count"]) for r in board.tags] == [("VIP", 2), ("新客", 1)]
    by_triggers = snapshot()
    rebuild_summaries()
    assert snapshot() == by_triggers

    imports.revert(job, user=manager)
    board = dashboard_for(manager)
    assert (board.total, board.active, board.tags) == (0, 0, [])


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_of_one_customer_make_one_repeat_buyer(staff, teams):
    customer = Customer.objects.create(display_name="并发", owner=staff, team=teams[0])
    together = threading.Barrier(2)

    def buy(number):
        try:
            with transaction.atomic():
                together.wait()
                # On different days: the two orders share no revenue bucket (whose row lock
                # would make the second wait anyway).
                Order.objects.create(
                    customer=customer,
                    external_id=f"T-{number}",
                    amount=1,
                    ordered_at=timezone.now() - datetime.timedelta(days=number),
                )
                time.sleep(0.3)  # the other one's triggers run meanwhile, or wait for these
        finally:
            connections.close_all()

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    board = dashboard_for(staff)
    assert (board.buyers, board.repeat_buyers) == (1, 1)
