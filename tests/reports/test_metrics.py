"""Customer metrics: the triggers that keep order figures current, the RFM refresh, lifetime
value, cohorts and preferences, all against figures computed by hand below."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.models import Customer, Order
from reports import metrics
from reports.metrics import AGE_BANDS, Scope, age_band_expression, age_band_q
from reports.models import CustomerMetrics, MetricsRefresh, Segment
from tests.customers.import_helpers import media  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def at(day):
    """Noon UTC of an ISO date: whole days between any two of them."""
    return datetime.datetime.fromisoformat(f"{day}T12:00:00+00:00")


def order(customer, day, amount, *, channel="store", products=()):
    order.number = getattr(order, "number", 0) + 1
    return Order.objects.create(
        customer=customer,
        external_id=f"T-{order.number}",
        ordered_at=at(day),
        amount=Decimal(amount),
        channel=channel,
        lines=[{"product": p, "quantity": 1, "unit_price": "1"} for p in products],
    )


def figures_of(customer):
    return CustomerMetrics.objects.get(customer=customer)


# Triggers -----------------------------------------------------------------------------------


def test_every_new_customer_gets_an_empty_metrics_row(make_customer):
    customer = make_customer("新客户")
    row = figures_of(customer)
    assert (row.orders, row.revenue, row.first_order_at, row.last_order_at) == (0, 0, None, None)
    assert row.segment is None


def test_bulk_created_customers_get_their_rows_too(db):
    created = Customer.objects.bulk_create([Customer(display_name=f"批量{i}") for i in range(3)])
    assert CustomerMetrics.objects.filter(customer__in=created).count() == 3


def test_new_orders_add_to_the_figures(make_customer):
    customer = make_customer("甲")
    order(customer, "2025-03-01", "100.50")
    Order.objects.bulk_create(
        [
            Order(customer=customer, external_id="B-1", ordered_at=at("2025-01-01"), amount=10),
            Order(customer=customer, external_id="B-2", ordered_at=at("2025-05-01"), amount=5),
        ]
    )
    row = figures_of(customer)
    assert row.orders == 3
    assert row.revenue == Decimal("115.50")
    assert row.first_order_at == at("2025-01-01")
    assert row.last_order_at == at("2025-05-01")


def test_changed_orders_are_counted_again(make_customer):
    customer = make_customer("甲")
    first = order(customer, "2025-01-01", "100")
    last = order(customer, "2025-06-01", "50")
    last.amount = Decimal("70")
    last.ordered_at = at("2024-12-01")
    last.save()
    row = figures_of(customer)
    assert (row.orders, row.revenue) == (2, Decimal("170"))
    assert (row.first_order_at, row.last_order_at) == (at("2024-12-01"), at("2025-01-01"))
    # A change of what the figures do not use leaves the row alone.
    metrics.refresh_metrics()
    first.lines = [{"product": "茶", "quantity": 1, "unit_price": "1"}]
    first.save()
    assert figures_of(customer).refreshed_at is not None


def test_an_order_moved_to_another_customer_moves_its_figures(make_customer):
    a, b = make_customer("甲"), make_customer("乙")
    order(a, "2025-01-01", "100")
    moved = order(a, "2025-02-01", "30")
    order(b, "2025-03-01", "5")
    Order.objects.filter(pk=moved.pk).update(customer=b)
    row_a, row_b = figures_of(a), figures_of(b)
    assert (row_a.orders, row_a.revenue, row_a.last_order_at) == (1, 100, at("2025-01-01"))
    assert (row_b.orders, row_b.revenue, row_b.first_order_at) == (2, 35, at("2025-02-01"))


def test_deleted_orders_are_taken_off(make_customer):
    customer = make_customer("甲")
    order(customer, "2025-01-01", "100")
    latest = order(customer, "2025-02-01", "30")
    latest.delete()
    row = figures_of(customer)
    assert (row.orders, row.revenue, row.last_order_at) == (1, 100, at("2025-01-01"))
    Order.objects.filter(customer=customer).delete()
    row = figures_of(customer)
    assert (row.orders, row.revenue, row.first_order_at, row.last_order_at) == (0, 0, None, None)


def test_a_deleted_customer_takes_its_metrics_along(make_customer):
    customer = make_customer("甲")
    order(customer, "2025-01-01", "100")
    customer.delete()
    assert not CustomerMetrics.objects.filter(customer_id=customer.pk).exists()


def test_an_order_change_marks_the_lifetime_value_for_the_next_refresh(make_customer):
    customer = make_customer("甲")
    order(customer, "2025-01-01", "100")
    metrics.refresh_metrics()
    assert figures_of(customer).predicted_ltv == Decimal("300.00")
    order(customer, "2025-01-02", "100")
    assert figures_of(customer).refreshed_at is None
    metrics.refresh_metrics()
    # 2 orders within a year: 2 a year; 100 x 2 x 3 years.
    assert figures_of(customer).predicted_ltv == Decimal("600.00")


# The refresh, against figures computed by hand -----------------------------------------------


@pytest.fixture
def shop(staff, teams):
    """Five buying customers and one who never ordered.

    Ranked (ascending) by last order: D, C, A, E, B -> recency 1..5; by orders (ties by last
    order): D(1), B(1), C(2), A(3), E(4) -> frequency 1..5; by revenue: D 20, B 50, E 400,
    A 600, C 2000 -> monetary 1..5.
    """

    def customer(name, created):
        return Customer.objects.create(
            display_name=name, owner=staff, team=teams[0], created_at=at(created)
        )

    a = customer("A", "2025-12-05")
    b = customer("B", "2026-03-01")
    c = customer("C", "2023-06-01")
    d = customer("D", "2023-01-01")
    e = customer("E", "2025-11-15")
    f = customer("F", "2025-11-20")
    order(a, "2025-01-10", "100", channel="website", products=["茶叶"])
    order(a, "2025-07-10", "300", channel="website", products=["茶叶", "茶具"])
    order(a, "2026-01-10", "200", channel="store", products=["茶叶"])
    order(b, "2026-03-01", "50", channel="wechat", products=["月饼"])
    order(c, "2024-01-01", "1000", products=["白酒"])
    order(c, "2024-06-01", "1000", products=["白酒"])
    order(d, "2023-05-01", "20", products=["茶叶"])
    for day in ("2025-11-01", "2025-12-01", "2026-01-01", "2026-02-01"):
        order(e, day, "100", channel="app", products=["咖啡"])
    metrics.refresh_metrics()
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f}


EXPECTED = {
    # name: (R, F, M, segment, AOV, orders a year, mean interval days, predicted LTV)
    # A: 3 orders 365 days apart: 3 a year, 200 x 3 x 3 years.
    "A": (3, 4, 4, Segment.LOYAL, "200.00", 3.0, 182.5, "1800.00"),
    # B: one recent order: new; a single order counts as one a year.
    "B": (5, 2, 2, Segment.NEW, "50.00", 1.0, None, "150.00"),
    # C: 2 orders 152 days apart (2024 is a leap year): at least a year, so 2 a year.
    "C": (2, 3, 5, Segment.AT_RISK, "1000.00", 2.0, 152.0, "6000.00"),
    "D": (1, 1, 1, Segment.LOST, "20.00", 1.0, None, "60.00"),
    # E: 4 orders in 92 days: 4 a year; 92 / 3 days apart.
    "E": (4, 5, 3, Segment.CHAMPIONS, "100.00", 4.0, 92 / 3, "1200.00"),
}


def test_scores_segments_and_lifetime_values_match_the_hand_computed_ones(shop):
    for name, expected in EXPECTED.items():
        row = figures_of(shop[name])
        r, f, m, segment, aov, frequency, interval, ltv = expected
        assert (row.recency_score, row.frequency_score, row.monetary_score) == (r, f, m), name
        assert row.segment == segment, name
        assert row.average_order_value == Decimal(aov), name
        assert row.purchase_frequency == pytest.approx(frequency), name
        if interval is None:
            assert row.mean_interval_days is None, name
        else:
            assert row.mean_interval_days == pytest.approx(interval), name
        assert row.predicted_ltv == Decimal(ltv), name
    row = figures_of(shop["F"])
    assert (row.segment, row.recency_score, row.predicted_ltv) == (None, None, None)


def test_a_second_refresh_rewrites_nothing(shop):
    assert metrics.refresh_metrics() == 0


def test_a_customer_whose_orders_are_all_deleted_loses_their_scores(shop):
    Order.objects.filter(customer=shop["D"]).delete()
    metrics.refresh_metrics()
    row = figures_of(shop["D"])
    assert (row.segment, row.recency_score, row.predicted_ltv) == (None, None, None)
    # The others move up a quintile: four customers in five buckets.
    assert figures_of(shop["C"]).recency_score == 1


def test_a_changed_expected_lifetime_recomputes_every_value(shop, settings):
    refresh = MetricsRefresh.objects.create()
    metrics.refresh_metrics(refresh)
    settings.ANALYTICS_EXPECTED_LIFETIME_YEARS = 2
    assert metrics.refresh_metrics() == 5
    assert figures_of(shop["A"]).predicted_ltv == Decimal("1200.00")


def test_a_refresh_records_its_progress(shop):
    refresh = MetricsRefresh.objects.create()
    metrics.refresh_metrics(refresh)
    refresh.refresh_from_db()
    assert (refresh.state, refresh.progress, refresh.customers) == ("done", 100, 5)
    assert refresh.finished_at is not None


# Figures of the analytics page ------------------------------------------------------------


def test_segment_table(shop, admin_user):
    rows, total = metrics.segment_rows(Scope.of(admin_user))
    assert total == 6
    by_segment = {row["segment"]: row for row in rows}
    assert [row["segment"] for row in rows] == [*metrics.SEGMENT_ORDER, None]
    assert by_segment[Segment.CHAMPIONS]["customers"] == 1
    assert by_segment[Segment.CHAMPIONS]["revenue"] == Decimal("400")
    assert by_segment[Segment.CHAMPIONS]["share"] == pytest.approx(1 / 6)
    assert by_segment[Segment.AT_RISK]["average_ltv"] == Decimal("6000")
    assert by_segment[Segment.HIBERNATING]["customers"] == 0
    assert by_segment[None]["customers"] == 1


def test_lifetime_figures(shop, admin_user):
    figures = metrics.lifetime_figures(Scope.of(admin_user))
    # 5 buyers, 11 orders, 3,070 spent; A, C and E ordered again.
    assert (figures["buyers"], figures["orders"], figures["revenue"]) == (5, 11, Decimal(3070))
    assert figures["historical_ltv"] == Decimal(614)
    assert figures["average_order_value"] == pytest.approx(Decimal(3070) / 11)
    assert figures["purchase_frequency"] == pytest.approx((3 + 1 + 2 + 1 + 4) / 5)
    assert figures["predicted_ltv"] == pytest.approx(Decimal(9210) / 5)
    assert figures["repurchase_rate"] == pytest.approx(3 / 5)
    # (365 + 152 + 92) days over 2 + 1 + 3 intervals.
    assert figures["mean_interval_days"] == pytest.approx(609 / 6)
    assert figures["formula_ltv"] == pytest.approx(Decimal(3070) / 11 * Decimal("2.2") * 3)


def test_cohort_table(shop, admin_user):
    rows = metrics.cohort_table(Scope.of(admin_user), today=datetime.date(2026, 3, 15))
    assert [row["cohort"] for row in rows][:2] == [
        datetime.date(2025, 4, 1),
        datetime.date(2025, 5, 1),
    ]
    by_month = {row["cohort"]: row for row in rows}
    november = by_month[datetime.date(2025, 11, 1)]
    # E (ordered in November to February) and F (never).
    assert november["size"] == 2
    assert [c and c["share"] for c in november["cells"]] == [
        *(0.5, 0.5, 0.5, 0.5, 0.0),
        *(None,) * 7,
    ]
    december = by_month[datetime.date(2025, 12, 1)]
    # A's order of July came before they signed up; January is month 1.
    assert [c and c["share"] for c in december["cells"][:4]] == [0.0, 1.0, 0.0, 0.0]
    assert by_month[datetime.date(2026, 3, 1)]["cells"][0] == {"customers": 1, "share": 1.0}
    assert by_month[datetime.date(2025, 4, 1)]["size"] == 0
    assert by_month[datetime.date(2025, 4, 1)]["cells"][0] == {"customers": 0, "share": None}


def test_preferred_products_and_channels(shop, admin_user):
    rows = metrics.preferences(Scope.of(admin_user), since=at("2020-01-01"))
    by_segment = {row["segment"]: row for row in rows}
    # One buyer each: ties in the database's order of names.
    assert sorted(by_segment[Segment.LOYAL]["products"]) == [("茶具", 1), ("茶叶", 1)]
    assert by_segment[Segment.CHAMPIONS]["products"] == [("咖啡", 1)]
    channels = by_segment[Segment.LOYAL]["channels"]
    assert [(str(label), n) for label, n, _share in channels] == [("网站", 2), ("门店", 1)] or [
        (str(label), n) for label, n, _share in channels
    ] == [("Website", 2), ("Store", 1)]
    assert by_segment[Segment.HIBERNATING]["products"] == []


def test_figures_cover_only_the_customers_the_user_may_see(shop, staff2, teams):
    other = Customer.objects.create(display_name="他人", owner=staff2, team=teams[1])
    order(other, "2026-01-01", "999")
    metrics.refresh_metrics()
    rows, total = metrics.segment_rows(Scope.of(staff2))
    assert total == 1
    assert sum(row["revenue"] for row in rows) == Decimal("999")
    assert metrics.lifetime_figures(Scope.of(staff2))["orders"] == 1


# Age bands ----------------------------------------------------------------------------------


def test_birth_year_follows_the_birthday(make_customer):
    customer = make_customer("甲", birthday=datetime.date(1990, 5, 1))
    assert Customer.objects.get(pk=customer.pk).birth_year == 1990
    customer = Customer.objects.get(pk=customer.pk)
    customer.birthday = None
    customer.save()
    assert Customer.objects.get(pk=customer.pk).birth_year is None
    (bulk,) = Customer.objects.bulk_create(
        [Customer(display_name="乙", birthday=datetime.date(2001, 1, 2))]
    )
    assert Customer.objects.get(pk=bulk.pk).birth_year == 2001


def test_age_bands(make_customer):
    year = timezone.localdate().year
    ages = {"under18": 10, "18-24": 18, "25-34": 34, "45-54": 50, "65plus": 80}
    for key, age in ages.items():
        make_customer(key, birthday=datetime.date(year - age, 1, 1))
    make_customer("unknown")
    annotated = dict(
        Customer.objects.annotate(band=age_band_expression()).values_list("display_name", "band")
    )
    assert annotated == {**{key: key for key in ages}, "unknown": "unknown"}
    for key, _label, _low, _high in AGE_BANDS:
        expected = {key} if key in ages else set()
        found = Customer.objects.filter(age_band_q(key)).values_list("display_name", flat=True)
        assert set(found) == expected, key


def test_the_refresh_is_one_statement_per_step(shop, django_assert_max_num_queries):
    # Set-based: the number of statements does not grow with the customers.
    with django_assert_max_num_queries(16):
        metrics.refresh_metrics(MetricsRefresh.objects.create())


def test_imports_write_the_birth_year_of_new_and_updated_customers(manager, media):  # noqa: F811
    from tests.customers.import_helpers import HEADERS, csv_bytes, run_import

    good = dict(
        zip(
            HEADERS,
            ["王芳", "13900139000", "", "1990-01-02", "", "Lead", "女", "门店", "", "C1"],
            strict=True,
        )
    )
    run_import(manager, csv_bytes([[good[h] for h in HEADERS]]))
    customer = Customer.objects.get(external_id="C1")
    assert customer.birth_year == 1990
    assert CustomerMetrics.objects.filter(customer=customer).exists()
    changed = {**good, "生日": "1985-06-07"}
    run_import(manager, csv_bytes([[changed[h] for h in HEADERS]]), on_duplicate="update")
    customer = Customer.objects.get(external_id="C1")
    assert (str(customer.birthday), customer.birth_year) == ("1985-06-07", 1985)


def test_a_merge_and_its_undo_move_the_order_figures(admin_user, make_customer):
    from customers import merging

    survivor = make_customer("张伟", birthday=datetime.date(1980, 1, 1))
    merged = make_customer("张伟", birthday=datetime.date(1991, 2, 3))
    order(survivor, "2025-01-01", "10")
    order(merged, "2025-02-01", "30")
    merge = merging.merge_customers(
        survivor=survivor,
        merged=merged,
        user=admin_user,
        survivor_version=survivor.version,
        merged_version=merged.version,
        take={"birthday"},
    )
    row = figures_of(survivor)
    assert (row.orders, row.revenue, row.last_order_at) == (2, 40, at("2025-02-01"))
    assert Customer.objects.get(pk=survivor.pk).birth_year == 1991
    merging.undo_merge(merge, user=admin_user)
    assert (figures_of(survivor).orders, figures_of(merged).orders) == (1, 1)
    assert figures_of(merged).revenue == 30
    assert Customer.objects.get(pk=survivor.pk).birth_year == 1980
    assert Customer.objects.get(pk=merged.pk).birth_year == 1991


def test_the_refresh_measure_rolls_back_what_it_did(shop):
    figures = metrics.measure_metrics_refresh(repeats=1)
    assert (figures["customers"], figures["orders"], figures["rows_changed_first"]) == (6, 11, 0)
    # Orders were added for about 1% of the customers (maybe none of six), then taken back.
    assert not Order.objects.filter(source_system="bench").exists()
    assert figures_of(shop["A"]).segment == Segment.LOYAL
    assert figures["unchanged_seconds"] >= 0


def test_potential_and_hibernating_customers(make_customer):
    """Two orders each, so frequency follows recency (ties by last order): V..Z get R = F = 1..5;
    revenue makes M 5, 1, 2, 3, 4."""
    spent = {"V": "500", "W": "10", "X": "20", "Y": "30", "Z": "40"}
    for year, (name, amount) in enumerate(spent.items(), start=2020):
        customer = make_customer(name)
        order(customer, f"{year}-01-01", "0")
        order(customer, f"{year}-02-01", amount)
    metrics.refresh_metrics()
    segments = dict(CustomerMetrics.objects.values_list("customer__display_name", "segment"))
    assert segments == {
        "V": Segment.AT_RISK,  # R1, F + M = 6
        "W": Segment.HIBERNATING,  # R2, F + M = 3
        "X": Segment.POTENTIAL,  # R3, F + M = 5
        "Y": Segment.LOYAL,  # R4, F + M = 7
        "Z": Segment.CHAMPIONS,  # R5, F + M = 9
    }
