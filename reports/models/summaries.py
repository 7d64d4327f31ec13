"""Summary tables of the dashboard, kept current by PostgreSQL triggers.

Each table counts customers (or sums orders) per bucket: the keys permission scoping needs
(the customer's owner and team) and the keys a chart needs (the month a customer was created in,
their channel, province, status or tag; the day of an order). The dashboard of a user reads the
buckets of their reach instead of counting a million customers.

Statement-level triggers with transition tables (installed by migration
0003_dashboard_summaries from `trigger_sql()`) add the difference each INSERT, UPDATE or DELETE
makes, once per statement however many rows it touched, upserting the buckets in key order so
that two transactions never wait for each other's buckets in opposite orders. A bucket that
reaches zero is kept (and removed by the next rebuild). `rebuild_summaries()` recomputes every
table from scratch: `manage.py rebuild_dashboard_summaries` and the migration run it. Orders
moved to the archive (customers.partitions) still count: the rebuild reads them too.

Months and days are those of settings.TIME_ZONE, fixed in the SQL function
reports_dashboard_zone(); the rebuild installs it again, so after changing TIME_ZONE run the
rebuild.

A customer's orders and purchase counts (reports_customermetrics, kept by triggers of the
analytics migration 0002) are counted under the customer's owner and team. When customers are
deleted, PostgreSQL deletes their orders and metrics too (ON DELETE CASCADE), but runs the
triggers of those deletions last, when the customer rows are gone: the customer trigger, which
runs first, leaves the deleted customers' owner and team in reports_dashboarddeleted for them.
"""

from django.conf import settings
from django.db import connection as default_connection
from django.db import models, transaction

__all__ = [
    "DashboardSignups",
    "DashboardPlaces",
    "DashboardTags",
    "DashboardRevenue",
    "DashboardBuyers",
    "DashboardDeleted",
]


class ScopedBucket(models.Model):  # noqa: DJ008 (rows of figures, never shown one by one)
    # Plain integers, not foreign keys: a deleted user or team sets the customers' owner or
    # team to NULL, an update the triggers count like any other.
    owner_id = models.IntegerField(null=True)
    team_id = models.IntegerField(null=True)

    class Meta:
        abstract = True


def _unique(name, *fields):
    return models.UniqueConstraint(
        fields=["owner_id", "team_id", *fields], name=name, nulls_distinct=False
    )


class DashboardSignups(ScopedBucket):  # noqa: DJ008
    """Customers by the month they were created in and their source channel."""

    month = models.DateField()
    source = models.CharField(max_length=20)
    customers = models.IntegerField(default=0)

    class Meta:
        constraints = [_unique("dashboard_signups_key", "month", "source")]


class DashboardPlaces(ScopedBucket):  # noqa: DJ008
    """Customers by province ('' for none) and lifecycle status."""

    province = models.CharField(max_length=50)
    status = models.CharField(max_length=20)
    customers = models.IntegerField(default=0)

    class Meta:
        constraints = [_unique("dashboard_places_key", "province", "status")]


class DashboardTags(ScopedBucket):  # noqa: DJ008
    """Customers by tag (a customer with three tags counts once under each)."""

    tag = models.CharField(max_length=50)
    customers = models.IntegerField(default=0)

    class Meta:
        constraints = [_unique("dashboard_tags_key", "tag")]


class DashboardRevenue(ScopedBucket):  # noqa: DJ008
    """Orders and their amounts by day and currency."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    orders = models.IntegerField(default=0)
    amount = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        constraints = [_unique("dashboard_revenue_key", "day", "currency")]


class DashboardBuyers(ScopedBucket):  # noqa: DJ008
    """Customers with at least one order, and with at least two (the repurchase rate)."""

    buyers = models.IntegerField(default=0)
    repeat_buyers = models.IntegerField(default=0)

    class Meta:
        constraints = [_unique("dashboard_buyers_key")]


class DashboardDeleted(models.Model):  # noqa: DJ008
    """The owner and team of customers deleted by the current transaction.

    PostgreSQL deletes a customer's orders and metrics (ON DELETE CASCADE) after the customer
    row, and runs their triggers after the customer's: those triggers find the owner and team
    here. Rows of finished transactions are removed by the next deletion of customers.
    """

    customer_id = models.UUIDField(primary_key=True)
    owner_id = models.IntegerField(null=True)
    team_id = models.IntegerField(null=True)
    xact = models.BigIntegerField(db_index=True)


SUMMARY_MODELS = (
    DashboardSignups,
    DashboardPlaces,
    DashboardTags,
    DashboardRevenue,
    DashboardBuyers,
)

# --- SQL -----------------------------------------------------------------------------------

MONTH = "date_trunc('month', {0} AT TIME ZONE reports_dashboard_zone())::date"
DAY = "({0} AT TIME ZONE reports_dashboard_zone())::date"


def _upsert(table, keys, values, select):
    """An INSERT of `select` (giving keys then values) adding to existing buckets, in key order."""
    key_list = ", ".join(keys)
    columns = ", ".join([*keys, *values])
    updates = ", ".join(f"{v} = {table}.{v} + excluded.{v}" for v in values)
    order = ", ".join(str(i + 1) for i in range(len(keys)))
    return (
        f"INSERT INTO {table} ({columns}) {select} ORDER BY {order} "
        f"ON CONFLICT ({key_list}) DO UPDATE SET {updates};"
    )


def _customer_counts(rows, where=""):
    """Upserts of the customer buckets from `rows`: a FROM clause giving, per customer, alias k
    with columns owner_id, team_id, created_at, source, province, status, tags, d (+1 or -1)."""
    signups = _upsert(
        "reports_dashboardsignups",
        ("owner_id", "team_id", "month", "source"),
        ("customers",),
        f"SELECT k.owner_id, k.team_id, {MONTH.format('k.created_at')}, k.source, sum(k.d) "
        f"FROM {rows} {where} GROUP BY 1, 2, 3, 4 HAVING sum(k.d) <> 0",
    )
    places = _upsert(
        "reports_dashboardplaces",
        ("owner_id", "team_id", "province", "status"),
        ("customers",),
        f"SELECT k.owner_id, k.team_id, k.province, k.status, sum(k.d) "
        f"FROM {rows} {where} GROUP BY 1, 2, 3, 4 HAVING sum(k.d) <> 0",
    )
    tags = _upsert(
        "reports_dashboardtags",
        ("owner_id", "team_id", "tag"),
        ("customers",),
        f"SELECT k.owner_id, k.team_id, t.tag, sum(k.d) FROM {rows}, "
        "LATERAL (SELECT DISTINCT u AS tag FROM unnest(k.tags) u) t "
        f"{where} GROUP BY 1, 2, 3 HAVING sum(k.d) <> 0",
    )
    return "\n".join([signups, places, tags])


def _revenue(select):
    return _upsert(
        "reports_dashboardrevenue",
        ("owner_id", "team_id", "day", "currency"),
        ("orders", "amount"),
        select,
    )


def _buyers(select):
    return _upsert(
        "reports_dashboardbuyers", ("owner_id", "team_id"), ("buyers", "repeat_buyers"), select
    )


# The columns of a customer that a bucket depends on; an UPDATE that changes none of them
# changes no bucket.
CUSTOMER_KEYS = "owner_id, team_id, created_at, source, province, status, tags"
CUSTOMER_COLUMNS = "k.owner_id, k.team_id, k.created_at, k.source, k.province, k.status, k.tags"
# Each changed customer twice: as it was (-1) and as it is (+1).
CHANGED_CUSTOMERS = (
    "old_rows o JOIN new_rows n ON n.id = o.id, LATERAL (VALUES "
    "(o.owner_id, o.team_id, o.created_at, o.source, o.province, o.status, o.tags, -1), "
    "(n.owner_id, n.team_id, n.created_at, n.source, n.province, n.status, n.tags, 1)) "
    "k(owner_id, team_id, created_at, source, province, status, tags, d)"
)
CUSTOMER_CHANGED = "WHERE ({}) IS DISTINCT FROM ({})".format(
    *(", ".join(f"{side}.{key}" for key in CUSTOMER_KEYS.split(", ")) for side in "on")
)
# Customers moved to another owner or team: their orders and purchases move with them.
MOVED_CUSTOMERS = (
    "(SELECT n.id, v.owner_id, v.team_id, v.d FROM old_rows o JOIN new_rows n ON n.id = o.id "
    "AND (o.owner_id, o.team_id) IS DISTINCT FROM (n.owner_id, n.team_id), LATERAL "
    "(VALUES (o.owner_id, o.team_id, -1), (n.owner_id, n.team_id, 1)) v(owner_id, team_id, d)) k"
)
# Customers deleted by this transaction (for the triggers of a cascade), in place of
# customers_customer: a join on "c.id".
DELETED_OWNERS = (
    "(SELECT customer_id AS id, owner_id, team_id FROM reports_dashboarddeleted d "
    "WHERE d.xact = txid_current() "
    "AND NOT EXISTS (SELECT 1 FROM customers_customer x WHERE x.id = d.customer_id))"
)
# Every order, live or archived (customers.partitions): archiving moves whole months out of
# customers_order without firing its triggers, so the figures keep counting archived orders and
# whatever counts orders again from scratch reads both tables. Before the archive table exists
# (the earlier migrations run this module's SQL too), the live orders are all of them.
ALL_ORDERS = (
    "(SELECT customer_id, ordered_at, currency, amount FROM customers_order "
    "UNION ALL SELECT customer_id, ordered_at, currency, amount FROM customers_archivedorder)"
)
LIVE_ORDERS = "customers_order"


def _archive_exists(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('customers_archivedorder') IS NOT NULL")
        return cursor.fetchone()[0]


LOCK_CUSTOMERS = (
    "PERFORM 1 FROM customers_customer WHERE id IN (SELECT customer_id FROM {0}) "
    "ORDER BY id FOR SHARE;"
)


def _function(name, body):
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nRETURN NULL;\nEND $$;"
    )


def _trigger(name, table, event, function, *, old=False, new=False, when=""):
    referencing = " ".join(
        part
        for part, wanted in (("OLD TABLE AS old_rows", old), ("NEW TABLE AS new_rows", new))
        if wanted
    )
    return (
        f"DROP TRIGGER IF EXISTS {name} ON {table};\n"
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} "
        f"FOR EACH STATEMENT {when}EXECUTE FUNCTION {function}();"
    )


# Set (SET LOCAL) by the archiving of whole months (customers.partitions), whose orders leave
# customers_order without firing its triggers: their arrival in the archive is no new order.
MOVING_HISTORY = "current_setting('cims.moving_history', true) IS DISTINCT FROM 'on'"


def _archive_triggers():
    """The orders' triggers on customers_archivedorder too: the figures count live and archived
    orders alike, so an archived order deleted (a customer's erasure), moved to another
    customer (a merge) or moved here from the live table by a customer's archiving (a deletion
    there, an insertion here) changes them as a live order would."""
    table, prefix = "customers_archivedorder", "reports_dashboard_archivedorders"
    when = f"WHEN ({MOVING_HISTORY}) "
    return [
        _trigger(
            f"{prefix}_inserted", table, "INSERT", "reports_dashboard_orders_inserted",
            new=True, when=when,
        ),
        _trigger(
            f"{prefix}_deleted", table, "DELETE", "reports_dashboard_orders_deleted", old=True
        ),
        _trigger(
            f"{prefix}_updated", table, "UPDATE", "reports_dashboard_orders_updated",
            old=True, new=True,
        ),
    ]  # fmt: skip


def zone_sql(zone=None):
    """The function giving the time zone of months and days (inlined: IMMUTABLE)."""
    zone = (zone or settings.TIME_ZONE).replace("'", "''")
    return (
        "CREATE OR REPLACE FUNCTION reports_dashboard_zone() RETURNS text "
        f"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '{zone}'::text $$;"
    )


def _customer_functions(orders):
    inserted = _customer_counts(f"(SELECT {CUSTOMER_KEYS}, 1 AS d FROM new_rows) k")
    deleted = _customer_counts(f"(SELECT {CUSTOMER_KEYS}, -1 AS d FROM old_rows) k")
    # For the triggers of the cascade (see the module's docstring), after removing what
    # finished transactions left.
    deleted += (
        "\nDELETE FROM reports_dashboarddeleted WHERE xact <> txid_current();"
        "\nINSERT INTO reports_dashboarddeleted (customer_id, owner_id, team_id, xact) "
        "SELECT id, owner_id, team_id, txid_current() FROM old_rows ORDER BY id "
        "ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id, "
        "team_id = excluded.team_id, xact = excluded.xact;"
    )
    if orders == ALL_ORDERS:
        # Archived orders left behind by a deleted customer (no foreign key cascades to the
        # archive) stop counting with them, as a rebuild, which counts customers' orders, says.
        deleted += "\n" + _revenue(
            f"SELECT o.owner_id, o.team_id, {DAY.format('r.ordered_at')}, r.currency, "
            "-count(*), -sum(r.amount) FROM old_rows o "
            "JOIN customers_archivedorder r ON r.customer_id = o.id GROUP BY 1, 2, 3, 4"
        )
    updated = _customer_counts(CHANGED_CUSTOMERS, CUSTOMER_CHANGED)
    updated += "\n" + _revenue(
        f"SELECT k.owner_id, k.team_id, {DAY.format('r.ordered_at')}, r.currency, "
        "sum(k.d), sum(k.d * r.amount) "
        f"FROM {MOVED_CUSTOMERS} JOIN {orders} r ON r.customer_id = k.id "
        "GROUP BY 1, 2, 3, 4 HAVING sum(k.d) <> 0 OR sum(k.d * r.amount) <> 0"
    )
    updated += "\n" + _metrics_moved()
    return [
        _function("reports_dashboard_customers_inserted", inserted),
        _function("reports_dashboard_customers_deleted", deleted),
        _function("reports_dashboard_customers_updated", updated),
    ]


def _metrics_moved():
    return _buyers(
        "SELECT k.owner_id, k.team_id, sum(k.d * (m.orders >= 1)::int), "
        "sum(k.d * (m.orders >= 2)::int) "
        f"FROM {MOVED_CUSTOMERS} JOIN reports_customermetrics m ON m.customer_id = k.id "
        "GROUP BY 1, 2"
    )


def _purchases(counts):
    """Statements counting buyers and repeat buyers again where an order statement changes
    customers' numbers of orders; `counts` gives (customer_id, n), n the change.

    They run before the analytics trigger on the same statement (triggers fire in the order
    of their names: reports_dashboard_... before reports_metrics_...), so that
    reports_customermetrics.orders still holds each customer's number before the change;
    its rows are locked first, in key order, so that a concurrent statement on the same
    customers waits and then reads the number this one leaves.
    """
    lock = (
        "PERFORM 1 FROM reports_customermetrics WHERE customer_id IN "
        f"(SELECT customer_id FROM {counts} x) ORDER BY customer_id FOR UPDATE;"
    )
    crossing = "sum((b.n + x.n >= {0})::int - (b.n >= {0})::int)"
    upsert = _buyers(
        f"SELECT c.owner_id, c.team_id, {crossing.format(1)}, {crossing.format(2)} "
        f"FROM {counts} x JOIN customers_customer c ON c.id = x.customer_id "
        "LEFT JOIN reports_customermetrics m ON m.customer_id = x.customer_id, "
        "LATERAL (SELECT COALESCE(m.orders, 0) AS n) b "
        f"GROUP BY 1, 2 HAVING {crossing.format(1)} <> 0 OR {crossing.format(2)} <> 0"
    )
    return [lock, upsert]


def _order_functions():
    def changes(rows, sign, owners="customers_customer"):
        return (
            f"SELECT c.owner_id, c.team_id, {DAY.format('r.ordered_at')}, r.currency, "
            f"sum({sign}), sum({sign} * r.amount) "
            f"FROM {rows} r JOIN {owners} c ON c.id = r.customer_id "
            "GROUP BY 1, 2, 3, 4"
        )

    inserted = "\n".join(
        [
            LOCK_CUSTOMERS.format("new_rows"),
            _revenue(changes("new_rows", "1")),
            *_purchases("(SELECT customer_id, count(*) AS n FROM new_rows GROUP BY 1)"),
        ]
    )
    # Deleted orders may be those of deleted customers.
    deleted = "\n".join(
        [
            _revenue(changes("old_rows", "-1")),
            _revenue(changes("old_rows", "-1", DELETED_OWNERS)),
            # Those of deleted customers: by the trigger on their deleted metrics.
            *_purchases("(SELECT customer_id, -count(*) AS n FROM old_rows GROUP BY 1)"),
        ]
    )
    # Only orders whose customer, time, amount or currency changed; both versions of each.
    pairs = (
        "(SELECT k.* FROM old_rows o JOIN new_rows n ON n.id = o.id, LATERAL (VALUES "
        "(o.customer_id, o.ordered_at, o.currency, o.amount, -1), "
        "(n.customer_id, n.ordered_at, n.currency, n.amount, 1)) "
        "k(customer_id, ordered_at, currency, amount, d) "
        "WHERE (o.customer_id, o.ordered_at, o.currency, o.amount) IS DISTINCT FROM "
        "(n.customer_id, n.ordered_at, n.currency, n.amount))"
    )
    moved = (
        "(SELECT customer_id, sum(d) AS n FROM (SELECT o.customer_id, -1 AS d "
        "FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id "
        "UNION ALL SELECT n.customer_id, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE o.customer_id <> n.customer_id) x GROUP BY 1 HAVING sum(d) <> 0)"
    )
    updated = (
        LOCK_CUSTOMERS.format("new_rows")
        + "\n"
        + "\n".join(_purchases(moved))
        + "\n"
        + _revenue(
            f"SELECT c.owner_id, c.team_id, {DAY.format('r.ordered_at')}, r.currency, "
            "sum(r.d), sum(r.d * r.amount) "
            f"FROM {pairs} r JOIN customers_customer c ON c.id = r.customer_id "
            "GROUP BY 1, 2, 3, 4 HAVING sum(r.d) <> 0 OR sum(r.d * r.amount) <> 0"
        )
    )
    return [
        _function("reports_dashboard_orders_inserted", inserted),
        _function("reports_dashboard_orders_deleted", deleted),
        _function("reports_dashboard_orders_updated", updated),
    ]


def _metrics_functions():
    # A customer's metrics row is deleted with the customer (ON DELETE CASCADE), before the
    # triggers on their orders run: the buyer counts go with the row. Changes of the numbers
    # of orders are counted by the triggers on orders (_purchases), without a trigger on the
    # metrics' updates, which the analytics refresh makes by the hundred thousand.
    gone = (
        "(SELECT customer_id, -1 AS buyers, -(orders >= 2)::int AS repeat_buyers "
        "FROM old_rows WHERE orders >= 1) x"
    )
    deleted = "\n".join(
        _buyers(
            "SELECT c.owner_id, c.team_id, sum(x.buyers), sum(x.repeat_buyers) "
            f"FROM {gone} JOIN {owners} c ON c.id = x.customer_id GROUP BY 1, 2"
        )
        for owners in ("customers_customer", DELETED_OWNERS)
    )
    return [_function("reports_dashboard_metrics_deleted", deleted)]


def _triggers(table, prefix):
    return [
        _trigger(f"{prefix}_inserted", table, "INSERT", f"{prefix}_inserted", new=True),
        _trigger(f"{prefix}_deleted", table, "DELETE", f"{prefix}_deleted", old=True),
        _trigger(f"{prefix}_updated", table, "UPDATE", f"{prefix}_updated", old=True, new=True),
    ]


def trigger_sql(orders=ALL_ORDERS):
    """Every function and trigger, as statements (idempotent: CREATE OR REPLACE)."""
    statements = [
        zone_sql(),
        *_customer_functions(orders),
        *_order_functions(),
        *_metrics_functions(),
    ]
    statements += _triggers("customers_customer", "reports_dashboard_customers")
    statements += _triggers("customers_order", "reports_dashboard_orders")
    if orders == ALL_ORDERS:
        statements += _archive_triggers()
    statements.append(
        _trigger(
            "reports_dashboard_metrics_deleted",
            "reports_customermetrics",
            "DELETE",
            "reports_dashboard_metrics_deleted",
            old=True,
        )
    )
    return statements


def archive_drop_sql():
    return [
        "DO $$ BEGIN IF to_regclass('customers_archivedorder') IS NOT NULL THEN "
        f"DROP TRIGGER IF EXISTS reports_dashboard_archivedorders_{event} "
        "ON customers_archivedorder; END IF; END $$;"
        for event in ("inserted", "deleted", "updated")
    ]


def drop_sql():
    statements = archive_drop_sql()
    for table, prefix in (
        ("customers_customer", "reports_dashboard_customers"),
        ("customers_order", "reports_dashboard_orders"),
        ("reports_customermetrics", "reports_dashboard_metrics"),
    ):
        for event in ("inserted", "deleted", "updated"):
            statements.append(
                f"DO $$ BEGIN IF to_regclass('{table}') IS NOT NULL THEN "
                f"DROP TRIGGER IF EXISTS {prefix}_{event} ON {table}; END IF; END $$;"
            )
            statements.append(f"DROP FUNCTION IF EXISTS {prefix}_{event}();")
    statements.append("DROP FUNCTION IF EXISTS reports_dashboard_zone();")
    return statements


BUCKET_TABLES = (
    "reports_dashboardsignups",
    "reports_dashboardplaces",
    "reports_dashboardtags",
    "reports_dashboardrevenue",
    "reports_dashboardbuyers",
)


def _rebuild_statements(orders=ALL_ORDERS, scopes=None):
    """The statements counting every bucket again from scratch: all of them, or only those of
    the (owner_id, team_id) `scopes`."""
    if scopes is None:
        where = "TRUE"
        statements = [f"TRUNCATE {', '.join(BUCKET_TABLES)}, reports_dashboarddeleted;"]
    else:
        values = ", ".join(
            "({}::bigint, {}::bigint)".format(*("NULL" if p is None else int(p) for p in scope))
            for scope in sorted(set(scopes), key=lambda scope: tuple(p or 0 for p in scope))
        )

        def inside(alias):
            return (
                f"EXISTS (SELECT 1 FROM (VALUES {values}) s(owner_id, team_id) "
                f"WHERE s.owner_id IS NOT DISTINCT FROM {alias}.owner_id "
                f"AND s.team_id IS NOT DISTINCT FROM {alias}.team_id)"
            )

        where = inside("c")
        statements = [f"DELETE FROM {table} t WHERE {inside('t')};" for table in BUCKET_TABLES]
    customers = f"(SELECT {CUSTOMER_KEYS}, 1 AS d FROM customers_customer c WHERE {where}) k"
    return [
        *statements,
        *_customer_counts(customers).split("\n"),
        _revenue(
            f"SELECT c.owner_id, c.team_id, {DAY.format('r.ordered_at')}, r.currency, "
            f"count(*), sum(r.amount) FROM {orders} r "
            f"JOIN customers_customer c ON c.id = r.customer_id WHERE {where} "
            "GROUP BY 1, 2, 3, 4"
        ),
        _buyers(
            "SELECT c.owner_id, c.team_id, count(*), count(*) FILTER (WHERE m.orders >= 2) "
            "FROM reports_customermetrics m JOIN customers_customer c ON c.id = m.customer_id "
            f"WHERE m.orders >= 1 AND {where} GROUP BY 1, 2"
        ),
    ]


def recount_scopes(scopes, connection=None):
    """Recount the buckets of the (owner_id, team_id) `scopes` from scratch, inside the
    caller's transaction.

    For moves of whole customers between the live tables and the archive (customers.archiving):
    their customer row, orders and metrics row leave and come back in several statements whose
    triggers each see only part of the move, so the buckets of the customers' scopes are
    counted again afterwards instead. Writers to the same tables wait meanwhile, as for a
    rebuild, so that no change falls between the recount and the triggers.
    """
    scopes = list(scopes)
    if not scopes:
        return
    connection = connection or default_connection
    with connection.cursor() as cursor:
        cursor.execute(
            "LOCK TABLE customers_customer, customers_order, reports_customermetrics, "
            "customers_archivedorder IN SHARE MODE"
        )
        for statement in _rebuild_statements(ALL_ORDERS, scopes):
            cursor.execute(statement)


def install_triggers(connection=None):
    """Install (or replace) the functions and triggers, with settings.TIME_ZONE."""
    connection = connection or default_connection
    with connection.cursor() as cursor:
        orders = ALL_ORDERS if _archive_exists(connection) else LIVE_ORDERS
        for statement in trigger_sql(orders):
            cursor.execute(statement)


def rebuild_summaries(connection=None):
    """Recompute every summary table from the customers, orders and metrics.

    Writes to customers, orders and metrics wait until it is done (SHARE locks), so that no
    change falls between the recount and the triggers.
    """
    connection = connection or default_connection
    with transaction.atomic(using=connection.alias):
        install_triggers(connection)
        archive = _archive_exists(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                "LOCK TABLE customers_customer, customers_order, reports_customermetrics"
                + (", customers_archivedorder" if archive else "")
                + " IN SHARE MODE"
            )
            # A rebuild reads every customer and order once per table: more memory for the
            # sorts and hashes makes it several times faster at a million customers.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            for statement in _rebuild_statements(ALL_ORDERS if archive else LIVE_ORDERS):
                cursor.execute(statement)
