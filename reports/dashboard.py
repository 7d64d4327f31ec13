"""The dashboard's figures, read from the summary tables (reports.models.summaries).

A user's figures are the sum of the buckets within their reach (every customer, their own and
their teams', or their own; accounts.permissions decides which), plus the customers shared with
them one by one that lie outside that reach, counted live: they are few.

Months and days are those of settings.TIME_ZONE. Revenue is that of orders in
settings.DASHBOARD_CURRENCY (orders in other currencies are not converted, and not counted).
"""

import calendar
import datetime
import statistics
import time
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.permissions import customer_reach, shared_customer_ids
from customers.models import (
    Customer,
    Order,
    Source,
    Status,
)
from reports.models import (
    CustomerMetrics,
    DashboardBuyers,
    DashboardPlaces,
    DashboardRevenue,
    DashboardSignups,
    DashboardTags,
)

MONTHS = 12
REVENUE_DAYS = 30
# The chart shows the provinces with most customers (the table beside it, every province).
CHART_PROVINCES = 15


@dataclass(frozen=True)
class Reach:
    """Which buckets a user's dashboard sums: all, or those of an owner and some teams."""

    everything: bool = False
    owner_id: int | None = None
    team_ids: frozenset = frozenset()
    # Customers shared with the user outside the owner and team buckets, counted live.
    shared_ids: tuple = ()

    @property
    def buckets(self):
        if self.everything:
            return Q()
        condition = Q(owner_id=self.owner_id) if self.owner_id else Q(pk__in=[])
        if self.team_ids:
            condition |= Q(team_id__in=self.team_ids)
        return condition


def reach_of(user):
    """The reach of `user`'s dashboard, the same customers as visible_customers(user)."""
    reach = customer_reach(user)
    if reach is None:
        return Reach()
    everything, teams = reach
    if everything:
        return Reach(everything=True)
    return Reach(owner_id=user.pk, team_ids=teams, shared_ids=_shared_outside(user, teams))


def _shared_outside(user, teams):
    """Customers shared with the user (or one of their teams) that they do not own and that
    are not in one of the teams they reach."""
    shared = shared_customer_ids(user)
    if not shared:
        return ()
    outside = Customer.objects.filter(pk__in=shared).exclude(owner=user)
    if teams:
        outside = outside.exclude(team__in=teams)
    return tuple(outside.values_list("pk", flat=True))


def local_today():
    return timezone.localdate(timezone.now(), zoneinfo.ZoneInfo(settings.TIME_ZONE))


def months_back(today, count):
    """The first days of the last `count` months, oldest first, ending with today's month."""
    first = today.replace(day=1)
    months = []
    for _i in range(count):
        months.append(first)
        first = (first - datetime.timedelta(days=1)).replace(day=1)
    return months[::-1]


def month_end(month):
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def customers_link(**params):
    """The customer list filtered by `params` (customers.filters names)."""
    return reverse("customers:list") + "?" + urlencode(params)


def _month_range(month):
    return {"created_after": month.isoformat(), "created_before": month_end(month).isoformat()}


@dataclass
class Dashboard:
    today: datetime.date
    currency: str
    total: int = 0
    new_this_month: int = 0
    new_last_month: int = 0
    active: int = 0
    revenue_30_days: Decimal = Decimal(0)
    orders_30_days: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    months: list = field(default_factory=list)
    # Rows of the tables (and so the charts): dicts with label, figures and link.
    signups: list = field(default_factory=list)
    signup_sources: list = field(default_factory=list)
    provinces: list = field(default_factory=list)
    revenue: list = field(default_factory=list)
    funnel: list = field(default_factory=list)
    tags: list = field(default_factory=list)

    @property
    def provinces_cut(self):
        return len(self.provinces) > CHART_PROVINCES

    @property
    def chart_provinces(self):
        return CHART_PROVINCES

    @property
    def zone(self):
        return settings.TIME_ZONE

    @property
    def active_link(self):
        return customers_link(status=Status.ACTIVE)

    @property
    def change(self):
        """New customers this month against last month, in percent (None without last month)."""
        if not self.new_last_month:
            return None
        return (self.new_this_month - self.new_last_month) * 100 / self.new_last_month

    @property
    def repurchase_rate(self):
        """Customers with two orders or more, in percent of those with at least one."""
        if not self.buyers:
            return None
        return self.repeat_buyers * 100 / self.buyers

    def charts(self):
        """What static/js/charts.js draws, with the link each bar or slice opens."""
        months = [_month_label(m) for m in self.months]
        return [
            {
                "id": "chart-signups",
                "kind": "stacked",
                "labels": months,
                "series": [
                    {
                        "name": str(label),
                        "data": [row["counts"][i] for row in self.signups],
                        "links": [row["links"][i] for row in self.signups],
                    }
                    for i, (_value, label) in enumerate(self.signup_sources)
                ],
            },
            _simple("chart-provinces", "bars", self.provinces[:CHART_PROVINCES]),
            {
                "id": "chart-revenue",
                "kind": "columns",
                "labels": [row["label"] for row in self.revenue],
                "counts": [float(row["amount"]) for row in self.revenue],
                "decimals": 2,
            },
            _simple("chart-funnel", "funnel", self.funnel),
            _simple("chart-tags", "bars", self.tags),
        ]


def _simple(chart_id, kind, rows):
    return {
        "id": chart_id,
        "kind": kind,
        "labels": [str(row["label"]) for row in rows],
        "counts": [row["count"] for row in rows],
        "links": [row["link"] for row in rows],
    }


def _month_label(month):
    return f"{month.year}-{month.month:02d}"


def dashboard_for(user, *, today=None):
    """Every figure of `user`'s dashboard."""
    today = today or local_today()
    reach = reach_of(user)
    board = Dashboard(
        today=today, currency=settings.DASHBOARD_CURRENCY, months=months_back(today, MONTHS)
    )
    if not reach.everything and not reach.owner_id:
        _fill(board, {}, {}, {}, {}, (0, 0))
        return board
    signups, places, tags, revenue, buyers = _from_buckets(board, reach)
    if reach.shared_ids:
        buyers = _add_shared(board, reach.shared_ids, signups, places, tags, revenue, buyers)
    _fill(board, signups, places, tags, revenue, buyers)
    return board


def _add(target, key, value):
    target[key] = target.get(key, 0) + value


def _from_buckets(board, reach):
    scope = reach.buckets
    signups = {}
    for row in (
        DashboardSignups.objects.filter(scope)
        .values_list("month", "source")
        .annotate(n=Sum("customers"))
        .order_by()
    ):
        _add(signups, row[:2], row[2])
    places = {}
    for province, status, count in (
        DashboardPlaces.objects.filter(scope)
        .values_list("province", "status")
        .annotate(n=Sum("customers"))
        .order_by()
    ):
        _add(places, (province, status), count)
    tags = dict(
        DashboardTags.objects.filter(scope)
        .values_list("tag")
        .annotate(n=Sum("customers"))
        .order_by()
    )
    revenue = {}
    for day, orders, amount in (
        DashboardRevenue.objects.filter(
            scope, day__gte=board.months[0], day__lte=board.today, currency=board.currency
        )
        .values_list("day")
        .annotate(orders=Sum("orders"), amount=Sum("amount"))
        .order_by()
    ):
        revenue[day] = (orders, amount)
    totals = DashboardBuyers.objects.filter(scope).aggregate(
        buyers=Sum("buyers"), repeat=Sum("repeat_buyers")
    )
    buyers = (totals["buyers"] or 0, totals["repeat"] or 0)
    return signups, places, tags, revenue, buyers


def _add_shared(board, ids, signups, places, tags, revenue, buyers):
    """Add the customers shared with the user outside their buckets (a few), counted live."""
    customers = Customer.objects.filter(pk__in=ids).order_by()
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    for month, source, count in (
        customers.annotate(month=TruncMonth("created_at", tzinfo=zone))
        .values_list("month", "source")
        .annotate(n=Count("pk"))
    ):
        _add(signups, (month.date(), source), count)
    for province, status, count in customers.values_list("province", "status").annotate(
        n=Count("pk")
    ):
        _add(places, (province, status), count)
    for tag_list in customers.values_list("tags", flat=True):
        for tag in set(tag_list):
            _add(tags, tag, 1)
    start = datetime.datetime.combine(board.months[0], datetime.time(), zone)
    for day, orders, amount in (
        Order.objects.filter(customer__in=ids, currency=board.currency, ordered_at__gte=start)
        .annotate(day=TruncDate("ordered_at", tzinfo=zone))
        .values_list("day")
        .annotate(orders=Count("pk"), amount=Sum("amount"))
        .order_by()
    ):
        previous = revenue.get(day, (0, Decimal(0)))
        revenue[day] = (previous[0] + orders, previous[1] + amount)
    counts = CustomerMetrics.objects.filter(customer__in=ids).aggregate(
        buyers=Count("pk", filter=Q(orders__gte=1)), repeat=Count("pk", filter=Q(orders__gte=2))
    )
    return buyers[0] + counts["buyers"], buyers[1] + counts["repeat"]


def _fill(board, signups, places, tags, revenue, buyers):
    this_month, last_month = board.months[-1], board.months[-2]
    board.total = sum(signups.values())
    board.new_this_month = sum(n for (m, _s), n in signups.items() if m == this_month)
    board.new_last_month = sum(n for (m, _s), n in signups.items() if m == last_month)
    board.buyers, board.repeat_buyers = buyers

    sources = [(v, label) for v, label in Source.choices]
    known = {v for v, _label in sources}
    # A source no longer offered still counts, under its stored name.
    sources += sorted({(s, s) for (_m, s) in signups if s not in known})
    board.signup_sources = sources
    board.signups = []
    for month in board.months:
        counts = [signups.get((month, value), 0) for value, _label in sources]
        links = [customers_link(source=value, **_month_range(month)) for value, _l in sources]
        board.signups.append(
            {
                "label": _month_label(month),
                "month": month,
                "counts": counts,
                "links": links,
                "cells": list(zip(counts, links, strict=True)),
                "total": sum(counts),
                "link": customers_link(**_month_range(month)),
            }
        )

    by_province, by_status = {}, {}
    for (province, status), count in places.items():
        _add(by_province, province, count)
        _add(by_status, status, count)
    board.active = by_status.get(Status.ACTIVE, 0)
    board.provinces = [
        {
            "label": province or _("Not specified"),
            "count": count,
            "link": customers_link(province=province or "none"),
        }
        for province, count in sorted(by_province.items(), key=lambda p: (-p[1], p[0]))
        if count
    ]
    board.funnel = [
        {"label": label, "count": by_status.get(value, 0), "link": customers_link(status=value)}
        for value, label in Status.choices
    ]
    board.tags = [
        {"label": tag, "count": count, "link": customers_link(tags=tag)}
        for tag, count in sorted(tags.items(), key=lambda t: (-t[1], t[0]))[
            : settings.DASHBOARD_TOP_TAGS
        ]
        if count
    ]

    since = board.today - datetime.timedelta(days=REVENUE_DAYS - 1)
    monthly = {month: [0, Decimal(0)] for month in board.months}
    for day, (orders, amount) in revenue.items():
        if day > board.today:  # orders dated in the future count when their day comes
            continue
        if day >= since:
            board.orders_30_days += orders
            board.revenue_30_days += amount
        month = day.replace(day=1)
        if month in monthly:
            monthly[month][0] += orders
            monthly[month][1] += amount
    board.revenue = [
        {"label": _month_label(m), "month": m, "orders": o, "amount": a}
        for m, (o, a) in monthly.items()
    ]


def measure_dashboard(usernames=("admin", "manager", "staff"), *, runs=20):
    """Time the dashboard view (figures and rendered page) for each user, in milliseconds.

    Calls the view directly, without the middleware (sessions, two-factor check), so that it
    writes nothing to the database it measures.
    """
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    from reports.dashboard_views import dashboard

    results = {}
    for username in usernames:
        user = get_user_model().objects.get(username=username)
        times = []
        for _i in range(runs + 1):
            request = RequestFactory().get(reverse("dashboard:index"))
            request.user = get_user_model().objects.get(pk=user.pk)  # no cached permissions
            started = time.perf_counter()
            response = dashboard(request)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"The dashboard of {username} answered {response.status_code}")
        times = times[1:]  # the first run loads templates and translations
        results[username] = {
            "customers": dashboard_for(user).total,
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
        }
    return results
