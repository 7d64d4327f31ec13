"""Customer analytics: RFM scores and segments, lifetime value, cohorts, age bands.

Each customer's orders, revenue and first and last order time are kept current in
reports_customermetrics by triggers (migration reports 0002). `refresh_metrics` derives the rest
from those columns alone, for all customers in one UPDATE, nightly and on demand:

- recency, frequency and monetary scores 1..5: quintiles (ntile(5)) of the customers with
  orders by last order time, by number of orders, and by revenue (ties broken by last order
  time, then customer id); 5 is best;
- the segment, from the first of these rules that holds (R, F, M the scores):
  new: one order and R >= 4; champions: R >= 4 and F + M >= 8; loyal: R >= 3 and F + M >= 6;
  potential: R >= 3; at risk: F + M >= 6; hibernating: R = 2; lost: R = 1;
- average order value = revenue / orders;
- purchase frequency (orders a year) = orders / max(years between first and last order, 1);
- mean interval = days between first and last order / (orders - 1), for two orders or more;
- predicted lifetime value = average order value x purchase frequency x
  ANALYTICS_EXPECTED_LIFETIME_YEARS.

None of these depends on today's date, so a refresh rewrites only the rows whose figures
changed (new orders, and customers whose quintile moved), which keeps it fast and lets
PostgreSQL update rows in place (HOT) where no indexed column changed.

The analytics page's figures (`analytics_figures`) are computed over the customers a user may
see, in SQL joined to that set, and cached per set of customers for a few minutes.
"""

import datetime
import hashlib
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, CharField, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from reports.models import CustomerMetrics, MetricsRefresh, Segment

# (key, label, min_age, max_age or None); ages are counted from the year of birth alone.
AGE_BANDS = [
    ("under18", _("Under 18"), 0, 17),
    ("18-24", _("18–24"), 18, 24),
    ("25-34", _("25–34"), 25, 34),
    ("35-44", _("35–44"), 35, 44),
    ("45-54", _("45–54"), 45, 54),
    ("55-64", _("55–64"), 55, 64),
    ("65plus", _("65 and over"), 65, None),
]
UNKNOWN_AGE = "unknown"
AGE_BAND_CHOICES = [(key, label) for key, label, _lo, _hi in AGE_BANDS] + [
    (UNKNOWN_AGE, _("Unknown"))
]

# The order segments are shown in: best customers first.
SEGMENT_ORDER = [
    Segment.CHAMPIONS,
    Segment.LOYAL,
    Segment.POTENTIAL,
    Segment.NEW,
    Segment.AT_RISK,
    Segment.HIBERNATING,
    Segment.LOST,
]


def _this_year():
    return timezone.localdate().year


def age_band_q(key, *, year=None):
    """Customers in the age band `key` (a key of AGE_BANDS, or "unknown"), as a filter."""
    if key == UNKNOWN_AGE:
        return Q(birth_year__isnull=True)
    year = year or _this_year()
    for band, _label, low, high in AGE_BANDS:
        if band == key:
            condition = Q(birth_year__lte=year - low)
            if high is not None:
                condition &= Q(birth_year__gte=year - high)
            return condition
    raise ValueError(f"Unknown age band {key}")


def age_band_expression(*, year=None):
    """The age band key of each customer, from `birth_year` ("unknown" without one)."""
    year = year or _this_year()
    whens = [When(birth_year__isnull=True, then=Value(UNKNOWN_AGE))]
    for key, _label, low, _high in reversed(AGE_BANDS):
        whens.append(When(birth_year__lte=year - low, then=Value(key)))
    # Born "after" this year (a typing error): the youngest band.
    return Case(*whens, default=Value(AGE_BANDS[0][0]), output_field=CharField())


# --- The refresh -----------------------------------------------------------------------------

# One refresh at a time: a second waits for the first, then finds little left to change.
REFRESH_LOCK = 0x43494D53_0001  # "CIMS", 1

# The customers whose scores or segment moved, or whose order figures changed since the last
# refresh (the triggers clear refreshed_at), or all of them (full). The sorts carry narrow rows.
CHANGED_SQL = """
CREATE TEMPORARY TABLE metrics_changed ON COMMIT DROP AS
WITH by_recency AS (
    -- The position in recency order (rr) breaks the ties of the other two orders: integers
    -- compare faster than a timestamp and a uuid.
    SELECT customer_id, orders, revenue, recency_score, frequency_score, monetary_score,
           segment, refreshed_at IS NULL AS stale,
           row_number() OVER recency AS rr, ntile(5) OVER recency AS r
    FROM reports_customermetrics
    WHERE orders > 0
    WINDOW recency AS (ORDER BY last_order_at, customer_id)
), ranked AS (
    SELECT *,
           ntile(5) OVER (ORDER BY orders, rr) AS f,
           ntile(5) OVER (ORDER BY revenue::float8, rr) AS m
    FROM by_recency
), scored AS (
    SELECT *,
           CASE
               WHEN orders = 1 AND r >= 4 THEN 'new'
               WHEN r >= 4 AND f + m >= 8 THEN 'champions'
               WHEN r >= 3 AND f + m >= 6 THEN 'loyal'
               WHEN r >= 3 THEN 'potential'
               WHEN f + m >= 6 THEN 'at_risk'
               WHEN r = 2 THEN 'hibernating'
               ELSE 'lost'
           END AS new_segment
    FROM ranked
)
SELECT customer_id, r, f, m, new_segment FROM scored
WHERE stale OR %(full)s
   OR (recency_score, frequency_score, monetary_score, segment)
      IS DISTINCT FROM (r::smallint, f::smallint, m::smallint, new_segment)
"""

_SPAN_DAYS = "extract(epoch FROM t.last_order_at - t.first_order_at)::float8 / 86400"
_FREQUENCY = f"t.orders * 365.25 / GREATEST({_SPAN_DAYS}, 365.25)"
UPDATE_SQL = f"""
UPDATE reports_customermetrics t SET
    recency_score = c.r, frequency_score = c.f, monetary_score = c.m, segment = c.new_segment,
    average_order_value = round(t.revenue / t.orders, 2),
    purchase_frequency = {_FREQUENCY},
    mean_interval_days = CASE WHEN t.orders > 1 THEN {_SPAN_DAYS} / (t.orders - 1) END,
    predicted_ltv = round(t.revenue / t.orders * ({_FREQUENCY})::numeric * %(years)s, 2),
    refreshed_at = %(now)s
FROM metrics_changed c
WHERE t.customer_id = c.customer_id
"""

# Customers whose last order was deleted keep no scores.
CLEAR_SQL = """
UPDATE reports_customermetrics SET
    recency_score = NULL, frequency_score = NULL, monetary_score = NULL, segment = NULL,
    average_order_value = NULL, purchase_frequency = NULL, mean_interval_days = NULL,
    predicted_ltv = NULL, refreshed_at = %(now)s
WHERE orders = 0 AND (recency_score IS NOT NULL OR segment IS NOT NULL
                      OR predicted_ltv IS NOT NULL OR average_order_value IS NOT NULL)
"""


# Customers without a metrics row: written while the triggers were off (a bulk load by a
# superuser with session_replication_role = replica, as seed_demo does, or a restore with
# disabled triggers). Their next refresh scores them.
FILL_MISSING_SQL = """
INSERT INTO reports_customermetrics (customer_id, orders, revenue, first_order_at, last_order_at)
SELECT c.id, count(o.id), COALESCE(sum(o.amount), 0), min(o.ordered_at), max(o.ordered_at)
FROM customers_customer c
LEFT JOIN (
    SELECT id, customer_id, amount, ordered_at FROM customers_order
    UNION ALL SELECT id, customer_id, amount, ordered_at FROM customers_archivedorder
) o ON o.customer_id = c.id
WHERE NOT EXISTS (SELECT 1 FROM reports_customermetrics m WHERE m.customer_id = c.id)
GROUP BY c.id
ON CONFLICT (customer_id) DO NOTHING
"""


def fill_missing_metrics():
    """Give every customer without a metrics row one, with its order figures; returns how many."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{int(settings.ANALYTICS_REFRESH_WORK_MEM_MB)}MB'")
        cursor.execute(FILL_MISSING_SQL)
        return cursor.rowcount


def _set_progress(refresh, **values):
    if refresh is not None:
        MetricsRefresh.objects.filter(pk=refresh.pk).update(**values)


def refresh_metrics(refresh=None, *, full=None, finish=True):
    """Recompute the scores and segments, and the lifetime values that need it; returns the
    number of rows changed.

    `refresh`, a MetricsRefresh, records the progress and the outcome. `full` recomputes every
    row's lifetime value (by default: when ANALYTICS_EXPECTED_LIFETIME_YEARS changed since the
    last refresh). One transaction: readers see the old figures or the new ones, never a mix.
    Without `finish`, the refresh is left running for `finish_refresh` to end.
    """
    now = timezone.now()
    years = settings.ANALYTICS_EXPECTED_LIFETIME_YEARS
    if full is None:
        previous = last_refresh()
        full = previous is not None and previous.expected_lifetime_years != years
    _set_progress(refresh, state=MetricsRefresh.State.RUNNING, started_at=now, progress=5)
    params = {"years": Decimal(str(years)), "now": now, "full": full}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK])
        # Three sorts of up to a million narrow rows: in memory they take a fraction of a
        # second each, on disk several. A plan this size gains nothing from compiling (JIT).
        cursor.execute(f"SET LOCAL work_mem = '{int(settings.ANALYTICS_REFRESH_WORK_MEM_MB)}MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("DROP TABLE IF EXISTS metrics_changed")
        cursor.execute(CHANGED_SQL, params)
        _set_progress(refresh, progress=60)
        cursor.execute(UPDATE_SQL, params)
        changed = cursor.rowcount
        cursor.execute(CLEAR_SQL, params)
        changed += cursor.rowcount
        cursor.execute("SELECT count(*) FROM reports_customermetrics WHERE orders > 0")
        customers = cursor.fetchone()[0]
    _set_progress(
        refresh,
        progress=80,
        customers=customers,
        changed=changed,
        expected_lifetime_years=years,
    )
    if finish:
        finish_refresh(refresh)
    return changed


def finish_refresh(refresh):
    _set_progress(
        refresh, state=MetricsRefresh.State.DONE, progress=100, finished_at=timezone.now()
    )


def queue_refresh(*, user=None):
    """A refresh waiting or running already, or a new one queued when this transaction commits."""
    from reports.tasks import refresh_customer_metrics

    pending = MetricsRefresh.objects.filter(
        state__in=(MetricsRefresh.State.QUEUED, MetricsRefresh.State.RUNNING),
        created_at__gte=timezone.now() - datetime.timedelta(hours=1),
    ).first()
    if pending is not None:
        return pending
    refresh = MetricsRefresh.objects.create(requested_by=user)
    transaction.on_commit(lambda: refresh_customer_metrics.delay(str(refresh.pk)))
    return refresh


def last_refresh():
    return MetricsRefresh.objects.filter(state=MetricsRefresh.State.DONE).first()


def _backend_cpu_seconds():
    """CPU seconds this connection's PostgreSQL process has used, when it runs on this machine
    (a figure that, unlike the wall clock, other work on a busy machine does not inflate)."""
    import os

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(function):
    cpu, started = _backend_cpu_seconds(), time.perf_counter()
    result = function()
    seconds = round(time.perf_counter() - started, 2)
    after = _backend_cpu_seconds()
    return result, seconds, None if cpu is None or after is None else round(after - cpu, 2)


def measure_metrics_refresh(*, repeats=3):
    """Seconds the refresh takes on this database (wall clock, and the database process's CPU
    time when it runs on this machine): the first run (which may rewrite every row), then
    `repeats` runs after it (nothing changed: the nightly case), and after orders for 1% of
    the customers. Everything is rolled back. For `make bench`."""
    figures = {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), sum(orders) FROM reports_customermetrics")
            figures["customers"], figures["orders"] = cursor.fetchone()
        changed, figures["first_seconds"], figures["first_cpu_seconds"] = _timed(refresh_metrics)
        figures["rows_changed_first"] = changed
        runs = [_timed(refresh_metrics)[1:] for _run in range(repeats)]
        figures["unchanged_seconds"], figures["unchanged_cpu_seconds"] = min(runs)
        with connection.cursor() as cursor:
            # Orders move a percent of the customers' figures, as a day of trade might.
            cursor.execute(
                "INSERT INTO customers_order (id, customer_id, source_system, external_id, "
                "ordered_at, amount, currency, channel, lines, created_at) "
                "SELECT gen_random_uuid(), customer_id, 'bench', gen_random_uuid()::text, "
                "now(), 100, 'CNY', 'store', '[]', now() "
                "FROM reports_customermetrics TABLESAMPLE BERNOULLI (1)"
            )
            figures["new_orders"] = cursor.rowcount
        changed, seconds, cpu = _timed(refresh_metrics)
        figures["rows_changed_after_orders"] = changed
        figures["after_orders_seconds"], figures["after_orders_cpu_seconds"] = seconds, cpu
        transaction.set_rollback(True)
    return figures


# --- Figures for the analytics page ------------------------------------------------------------


@dataclass
class Scope:
    """The customers a user may see, as SQL: a join to their ids, or nothing for all."""

    join: str = ""
    params: list = field(default_factory=list)
    key: str = "all"

    @classmethod
    def of(cls, user):
        from accounts.permissions import visible_customers

        customers = visible_customers(user)
        if customers.query.is_empty():
            return cls(
                join="JOIN (SELECT NULL::uuid AS id WHERE FALSE) v ON v.id = {column}", key="none"
            )
        if not customers.query.where:
            return cls()
        sql, params = customers.order_by().values("pk").query.sql_with_params()
        digest = hashlib.sha256(repr((sql, params)).encode()).hexdigest()[:24]
        return cls(join=f"JOIN ({sql}) v(id) ON v.id = {{column}}", params=list(params), key=digest)

    def on(self, column):
        return self.join.replace("{column}", column)


def _rows(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _share(part, whole):
    return (part / whole) if whole else None


def segment_rows(scope):
    """Customers, share, revenue and average predicted LTV per segment (None: no orders)."""
    rows = _rows(
        f"SELECT m.segment, count(*), COALESCE(sum(m.revenue), 0), avg(m.predicted_ltv), "
        f"avg(m.revenue) FROM reports_customermetrics m {scope.on('m.customer_id')} "
        "GROUP BY m.segment",
        scope.params,
    )
    by_segment = {segment: row for segment, *row in rows}
    total = sum(row[0] for row in by_segment.values())
    result = []
    for segment in [*SEGMENT_ORDER, None]:
        count, revenue, ltv, historical = by_segment.get(segment, (0, Decimal(0), None, None))
        result.append(
            {
                "segment": segment,
                "label": Segment(segment).label if segment else _("No orders yet"),
                "customers": count,
                "share": _share(count, total),
                "revenue": revenue,
                "average_ltv": ltv,
                "average_revenue": historical,
            }
        )
    return result, total


def lifetime_figures(scope):
    (row,) = _rows(
        "SELECT count(*), COALESCE(sum(m.orders), 0), COALESCE(sum(m.revenue), 0), "
        "count(*) FILTER (WHERE m.orders > 1), avg(m.purchase_frequency), avg(m.predicted_ltv), "
        "sum(extract(epoch FROM m.last_order_at - m.first_order_at) / 86400.0) "
        "FILTER (WHERE m.orders > 1), sum(m.orders - 1) FILTER (WHERE m.orders > 1) "
        f"FROM reports_customermetrics m {scope.on('m.customer_id')} WHERE m.orders > 0",
        scope.params,
    )
    buyers, orders, revenue, repeat, frequency, ltv, span_days, intervals = row
    years = settings.ANALYTICS_EXPECTED_LIFETIME_YEARS
    aov = (revenue / orders) if orders else None
    return {
        "buyers": buyers,
        "orders": orders,
        "revenue": revenue,
        "historical_ltv": (revenue / buyers) if buyers else None,
        "average_order_value": aov,
        "purchase_frequency": frequency,
        "expected_lifetime_years": years,
        "predicted_ltv": ltv,
        # The formula applied to the averages, as the page shows it.
        "formula_ltv": (
            aov * Decimal(str(frequency)) * Decimal(str(years))
            if aov is not None and frequency is not None
            else None
        ),
        "repeat_buyers": repeat,
        "repurchase_rate": _share(repeat, buyers),
        "mean_interval_days": (float(span_days) / intervals) if intervals else None,
    }


def _month_start(day, months_back=0):
    month = day.year * 12 + day.month - 1 - months_back
    return datetime.date(month // 12, month % 12 + 1, 1)


def cohort_table(scope, *, months=12, today=None):
    """Sign-up cohorts of the last `months` months (oldest first): for each, its size and,
    for every month k after sign-up (0 = the month of sign-up), the share of its customers
    who ordered in that calendar month. Months still to come are None."""
    today = today or timezone.localdate()
    first = _month_start(today, months - 1)
    tz = timezone.get_current_timezone_name()
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time()))
    sizes = dict(
        _rows(
            "SELECT date_trunc('month', c.created_at AT TIME ZONE %s)::date, count(*) "
            f"FROM customers_customer c {scope.on('c.id')} WHERE c.created_at >= %s GROUP BY 1",
            [tz, *scope.params, start],
        )
    )
    active = _rows(
        "SELECT cohort, k, count(DISTINCT customer_id) FROM ("
        "  SELECT o.customer_id, date_trunc('month', c.created_at AT TIME ZONE %s)::date AS cohort,"
        "    (extract(year FROM o.ordered_at AT TIME ZONE %s) * 12"
        "     + extract(month FROM o.ordered_at AT TIME ZONE %s))::int"
        "    - (extract(year FROM c.created_at AT TIME ZONE %s) * 12"
        "     + extract(month FROM c.created_at AT TIME ZONE %s))::int AS k"
        f"  FROM customers_customer c {scope.on('c.id')}"
        "  JOIN customers_order o ON o.customer_id = c.id"
        "  WHERE c.created_at >= %s AND o.ordered_at >= %s"
        ") x WHERE k >= 0 GROUP BY cohort, k",
        [tz, tz, tz, tz, tz, *scope.params, start, start],
    )
    counts = {(cohort, k): n for cohort, k, n in active}
    rows = []
    for index in range(months):
        cohort = _month_start(today, months - 1 - index)
        size = sizes.get(cohort, 0)
        available = months - index  # months k = 0 .. available - 1 have begun
        cells = []
        for k in range(months):
            if k >= available:
                cells.append(None)
            else:
                n = counts.get((cohort, k), 0)
                cells.append({"customers": n, "share": _share(n, size)})
        rows.append({"cohort": cohort, "size": size, "cells": cells})
    return rows


def preferences(scope, *, top=5, since=None):
    """The most bought products (by customers buying them) and the channels (by orders) of
    each segment, from orders since `since` (ANALYTICS_PREFERENCE_MONTHS back by default)."""
    since = since or timezone.now() - datetime.timedelta(
        days=round(30.44 * settings.ANALYTICS_PREFERENCE_MONTHS)
    )
    products = _rows(
        "SELECT segment, product, buyers FROM ("
        "  SELECT segment, product, buyers,"
        "         row_number() OVER (PARTITION BY segment ORDER BY buyers DESC, product) AS n"
        "  FROM (SELECT m.segment, l.value ->> 'product' AS product,"
        "               count(DISTINCT o.customer_id) AS buyers"
        "        FROM customers_order o"
        "        JOIN reports_customermetrics m ON m.customer_id = o.customer_id"
        f"       {scope.on('o.customer_id')}"
        "        CROSS JOIN LATERAL jsonb_array_elements("
        "            CASE jsonb_typeof(o.lines) WHEN 'array' THEN o.lines ELSE '[]' END) l"
        "        WHERE o.ordered_at >= %s AND m.segment IS NOT NULL"
        "          AND l.value ->> 'product' <> ''"
        "        GROUP BY 1, 2) p"
        ") ranked WHERE n <= %s ORDER BY segment, n",
        [*scope.params, since, top],
    )
    channels = _rows(
        "SELECT m.segment, o.channel, count(*) FROM customers_order o"
        " JOIN reports_customermetrics m ON m.customer_id = o.customer_id"
        f" {scope.on('o.customer_id')}"
        " WHERE o.ordered_at >= %s AND m.segment IS NOT NULL GROUP BY 1, 2",
        [*scope.params, since],
    )
    from customers.models import Channel

    result = {segment: {"products": [], "channels": []} for segment in SEGMENT_ORDER}
    for segment, product, buyers in products:
        result[segment]["products"].append((product, buyers))
    totals = {}
    for segment, _channel, n in channels:
        totals[segment] = totals.get(segment, 0) + n
    for segment, channel, n in sorted(channels, key=lambda row: (row[0], -row[2], row[1])):
        label = Channel(channel).label if channel in Channel.values else channel
        if len(result[segment]["channels"]) < top:
            result[segment]["channels"].append((label, n, _share(n, totals[segment])))
    return [
        {"segment": segment, "label": Segment(segment).label, **result[segment]}
        for segment in SEGMENT_ORDER
    ]


def analytics_figures(user, *, today=None):
    """Everything the analytics page shows, over the customers `user` may see.

    Cached per set of visible customers (everyone who sees every customer shares one entry)
    and per refresh, so a refresh shows at once: the segment and lifetime figures (a scan of
    the metrics table) for ANALYTICS_CACHE_SECONDS; cohorts and preferences, which read the
    orders, as long for a narrower set, and until the next refresh for all customers, for
    whom the refresh task computes them (`warm_order_figures`).
    """
    scope = Scope.of(user)
    latest = last_refresh()
    today = today or timezone.localdate()
    key = f"analytics:figures:{scope.key}:{latest.pk if latest else '-'}:{today.isoformat()}"
    figures = cache.get(key)
    if figures is None:
        segments, customers = segment_rows(scope)
        figures = {
            "segments": segments,
            "customers": customers,
            "lifetime": lifetime_figures(scope),
            "computed_at": timezone.now(),
        }
        cache.set(key, figures, settings.ANALYTICS_CACHE_SECONDS)
    return {**figures, **order_figures(scope, latest, today=today)}


def _order_figures_key(scope, refresh, today):
    return f"analytics:orders:{scope.key}:{refresh.pk if refresh else '-'}:{today.isoformat()}"


def order_figures(scope, refresh, *, today):
    key = _order_figures_key(scope, refresh, today)
    figures = cache.get(key)
    if figures is None:
        figures = {"cohorts": cohort_table(scope, today=today), "preferences": preferences(scope)}
        everyone = scope.key == Scope().key
        cache.set(key, figures, ORDER_FIGURES_TTL if everyone else settings.ANALYTICS_CACHE_SECONDS)
    return figures


# Until the next nightly refresh, and some more.
ORDER_FIGURES_TTL = 26 * 60 * 60


def warm_order_figures(refresh):
    """Compute the cohorts and preferences of all customers for the page, after `refresh`."""
    today = timezone.localdate()
    cache.delete(_order_figures_key(Scope(), refresh, today))
    order_figures(Scope(), refresh, today=today)


def metrics_for(customer):
    """The customer's metrics row, or None (for the customer page)."""
    return CustomerMetrics.objects.filter(customer=customer).first()
