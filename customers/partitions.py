"""Monthly partitions of interactions and orders, and the archiving of their oldest months.

customers_interaction and customers_order are partitioned by month (of settings.TIME_ZONE) of
occurred_at and ordered_at (migration 0014): `<table>_pYYYYMM` per month and `<table>_default`
for any row outside them. `create_partitions` makes the coming months' partitions ahead of time;
a row that reached the DEFAULT partition meanwhile moves into its month's new partition.

`archive_history` moves whole months older than ARCHIVE_HISTORY_AFTER_MONTHS to
customers_archivedinteraction and customers_archivedorder: per month one transaction that
copies the month's partition into the archive in one INSERT ... SELECT, then detaches and drops
it. Detaching fires no trigger, and the archive's triggers leave the copy out, so the reports'
figures (dashboard summaries, customer metrics) keep counting the archived orders, and what
recounts them from scratch reads the live and archived orders together.

All of it is serialised by one advisory lock: the nightly task, the monthly archive and an
operator's command never change the partitions at the same time.
"""

import datetime
import re
import time
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.dispatch import receiver
from django.utils import timezone

from accounts.signals import database_restored

# Any constant both writers agree on ("PART").
PARTITION_LOCK_KEY = 0x50415254
PARTITION_LOCK_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class History:
    table: str
    column: str
    archive: str
    # The columns the live and archive tables share (the archive adds archived_at).
    columns: tuple

    @property
    def default(self):
        return f"{self.table}_default"

    def partition(self, month):
        return f"{self.table}_p{month:%Y%m}"


INTERACTIONS = History(
    "customers_interaction",
    "occurred_at",
    "customers_archivedinteraction",
    (
        "id",
        "customer_id",
        "kind",
        "channel",
        "occurred_at",
        "summary",
        "details",
        "created_by_id",
        "created_at",
    ),
)
ORDERS = History(
    "customers_order",
    "ordered_at",
    "customers_archivedorder",
    (
        "id",
        "customer_id",
        "source_system",
        "external_id",
        "ordered_at",
        "amount",
        "currency",
        "channel",
        "lines",
        "created_at",
    ),
)
HISTORIES = (INTERACTIONS, ORDERS)


# --- Months -----------------------------------------------------------------------------------


def _zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def month_of(moment):
    """The first day of the month (of settings.TIME_ZONE) that `moment` falls in."""
    local = moment.astimezone(_zone())
    return datetime.date(local.year, local.month, 1)


def add_months(month, count):
    index = month.year * 12 + month.month - 1 + count
    return datetime.date(index // 12, index % 12 + 1, 1)


def month_start(month):
    """The moment `month` begins, in settings.TIME_ZONE."""
    return datetime.datetime(month.year, month.month, 1, tzinfo=_zone())


def _lock(cursor):
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK_KEY])
    # Creating, detaching and attaching partitions lock the whole table: queued behind a long
    # report, the lock request would hold up every reader after it. Better to give up (the
    # tasks retry later) than to stall the application.
    cursor.execute(f"SET LOCAL lock_timeout = {int(PARTITION_LOCK_TIMEOUT_MS)}")


# --- Partitions -------------------------------------------------------------------------------


def monthly_partitions(history, cursor=None):
    """The months that have a partition of their own, oldest first."""
    pattern = re.compile(rf"^{history.table}_p(\d{{4}})(\d{{2}})$")
    with _cursor(cursor) as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [history.table],
        )
        names = [row[0] for row in cursor.fetchall()]
    months = []
    for name in names:
        match = pattern.match(name)
        if match:
            months.append(datetime.date(int(match[1]), int(match[2]), 1))
    return sorted(months)


class _cursor:
    """The caller's cursor, or a new one closed at the end."""

    def __init__(self, cursor):
        self.given = cursor

    def __enter__(self):
        self.cursor = self.given or connection.cursor()
        return self.cursor

    def __exit__(self, *exc):
        if self.given is None:
            self.cursor.close()


def _default_months(cursor, history, *, before=None):
    """The months of the rows in the DEFAULT partition (older than `before`, if given)."""
    where, params = "", [settings.TIME_ZONE]
    if before is not None:
        where, params = f"WHERE {history.column} < %s", [*params, month_start(before)]
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', {history.column} AT TIME ZONE %s)::date "
        f"FROM {history.default} {where} ORDER BY 1",
        params,
    )
    return [row[0] for row in cursor.fetchall()]


# The bounds of a table's partitions, read back from the catalogue.
BOUNDS = r"""
SELECT lower, upper FROM (
    SELECT substring(bound FROM 'FROM \(''([^'']+)''\)')::timestamptz AS lower,
           substring(bound FROM 'TO \(''([^'']+)''\)')::timestamptz AS upper
    FROM (
        SELECT pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = %s::regclass
    ) partitions WHERE bound <> 'DEFAULT'
) ranges WHERE lower < %s AND upper > %s
"""


def _free_range(cursor, history, month):
    """The month's range, less what partitions made with another TIME_ZONE already cover
    (their months began at other hours): (start, end), or None when nothing is left."""
    start, end = month_start(month), month_start(add_months(month, 1))
    cursor.execute(BOUNDS, [history.table, end, start])
    for lower, upper in cursor.fetchall():
        if lower <= start:
            start = max(start, upper)
        else:
            end = min(end, lower)
    return (start, end) if start < end else None


def _create_partition(cursor, history, month):
    """Give `month` its partition; returns the number of rows moved from the DEFAULT partition,
    or None when the partition was there already. Call under the advisory lock."""
    if month in monthly_partitions(history, cursor):
        return None
    free = _free_range(cursor, history, month)
    if free is None:
        return None
    name = history.partition(month)
    start, end = (f"'{moment.isoformat()}'" for moment in free)
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {history.default} "
        f"WHERE {history.column} >= {start} AND {history.column} < {end})"
    )
    if not cursor.fetchone()[0]:
        cursor.execute(
            f"CREATE TABLE {name} PARTITION OF {history.table} FOR VALUES FROM ({start}) TO ({end})"
        )
        return 0
    # PostgreSQL refuses a partition for rows the DEFAULT partition holds. Detached, the
    # DEFAULT partition has no triggers: its rows move to the new month's table without
    # counting as deleted and inserted orders in the reports (or freeing their order numbers),
    # and the parent's lock keeps every writer waiting until both are attached again.
    cursor.execute(f"ALTER TABLE {history.table} DETACH PARTITION {history.default}")
    cursor.execute(
        f"CREATE TABLE {name} (LIKE {history.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE)"
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {history.default} "
        f"WHERE {history.column} >= {start} AND {history.column} < {end} RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"
    )
    moved = cursor.rowcount
    cursor.execute(
        f"ALTER TABLE {history.table} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
    )
    cursor.execute(f"ALTER TABLE {history.table} ATTACH PARTITION {history.default} DEFAULT")
    return moved


def create_partitions(*, months_ahead=None, today=None, using=DEFAULT_DB_ALIAS):
    """Make sure the current month and the `months_ahead` after it have their partitions, in
    both tables of the database `using`. Returns {table: [(month, rows moved from DEFAULT),
    ...]} of those created."""
    months_ahead = settings.PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    if months_ahead < 0:
        raise ValueError("months_ahead must not be negative")
    current = month_of(today or timezone.now())
    created = {}
    for history in HISTORIES:
        created[history.table] = []
        for offset in range(months_ahead + 1):
            month = add_months(current, offset)
            with transaction.atomic(using=using), connections[using].cursor() as cursor:
                _lock(cursor)
                moved = _create_partition(cursor, history, month)
            if moved is not None:
                created[history.table].append((month, moved))
    return created


@receiver(database_restored, dispatch_uid="create_partitions_after_restore")
def create_partitions_after_restore(sender, using, **kwargs):
    """A backup restored months after it was made lacks the partitions made since: make them
    now, rather than leave new rows in DEFAULT until the nightly task."""
    create_partitions(using=using)


# --- Archiving --------------------------------------------------------------------------------


@dataclass
class ArchivedMonth:
    table: str
    month: datetime.date
    rows: int
    seconds: float = 0.0


def _count(cursor, table):
    cursor.execute(f"SELECT count(*) FROM {table}")
    return cursor.fetchone()[0]


def archive_cutoff(months, today=None):
    """The first month kept live when history older than `months` months is archived."""
    return add_months(month_of(today or timezone.now()), -months)


def _archive_month(history, month):
    """Move one month's partition into the archive, in one transaction; returns rows moved."""
    from accounts import audit

    started = time.perf_counter()
    columns = ", ".join(history.columns)
    name = history.partition(month)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        if month not in monthly_partitions(history, cursor):
            return None
        # Copied while only writes to this month wait (SHARE on the partition alone); the
        # parent is locked out for the detaching and dropping only, at the end.
        cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
        # The reports' figures count these orders already, and their numbers are taken
        # already: the archive's triggers leave this move out (MOVING_HISTORY in
        # reports.models.summaries, and migration 0014).
        cursor.execute("SET LOCAL cims.moving_history = 'on'")
        cursor.execute(
            f"INSERT INTO {history.archive} ({columns}, archived_at) "
            f"SELECT {columns}, now() FROM {name}"
        )
        rows = cursor.rowcount
        cursor.execute("SET LOCAL cims.moving_history = 'off'")
        cursor.execute(f"ALTER TABLE {history.table} DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")
        done = ArchivedMonth(history.table, month, rows, time.perf_counter() - started)
        audit.record(
            audit.Action.HISTORY_ARCHIVE,
            data={"table": history.table, "month": f"{month:%Y-%m}", "rows": rows},
        )
    return done


def plan_archive(*, months=None, today=None):
    """The months `archive_history` would move now: [ArchivedMonth] with their row counts."""
    months = settings.ARCHIVE_HISTORY_AFTER_MONTHS if months is None else months
    if months <= 0:
        return []
    cutoff = archive_cutoff(months, today)
    plan = []
    with connection.cursor() as cursor:
        for history in HISTORIES:
            counts = {}
            for month in monthly_partitions(history, cursor):
                if month < cutoff:
                    counts[month] = _count(cursor, history.partition(month))
            cursor.execute(
                f"SELECT date_trunc('month', {history.column} AT TIME ZONE %s)::date, count(*) "
                f"FROM {history.default} WHERE {history.column} < %s GROUP BY 1",
                [settings.TIME_ZONE, month_start(cutoff)],
            )
            for month, rows in cursor.fetchall():
                counts[month] = counts.get(month, 0) + rows
            plan += [ArchivedMonth(history.table, m, counts[m]) for m in sorted(counts)]
    return plan


def archive_history(*, months=None, dry_run=False, today=None, actor=None):
    """Move every whole month older than `months` months (ARCHIVE_HISTORY_AFTER_MONTHS by
    default; 0 archives nothing) from the live tables to the archive tables.

    Rows of those months in the DEFAULT partition first get their month's partition, so that a
    month always moves as a whole. Each month is its own transaction, recorded in the audit
    trail with it; the run is recorded too. Returns the months moved (or, with `dry_run`, those
    that would be, with nothing changed).
    """
    from accounts import audit

    months = settings.ARCHIVE_HISTORY_AFTER_MONTHS if months is None else months
    # Counting every old month reads them whole: only a dry run, which reports it, needs to.
    plan = plan_archive(months=months, today=today) if dry_run else None
    done = []
    if not dry_run:
        cutoff = archive_cutoff(months, today) if months > 0 else None
        for history in HISTORIES if cutoff else ():
            with transaction.atomic(), connection.cursor() as cursor:
                _lock(cursor)
                stray = _default_months(cursor, history, before=cutoff)
            for month in stray:
                with transaction.atomic(), connection.cursor() as cursor:
                    _lock(cursor)
                    _create_partition(cursor, history, month)
            for month in monthly_partitions(history):
                if month < cutoff:
                    moved = _archive_month(history, month)
                    if moved is not None:
                        done.append(moved)
    audit.record(
        audit.Action.HISTORY_ARCHIVE,
        actor=actor,
        data={
            "after_months": months,
            "dry_run": dry_run,
            "months": [
                {"table": m.table, "month": f"{m.month:%Y-%m}", "rows": m.rows}
                for m in (plan if dry_run else done)
            ],
        },
    )
    return plan if dry_run else done


# --- Benchmark ------------------------------------------------------------------------------------


def _best_ms(cursor, sql, params, repeats):
    best = None
    for _run in range(repeats):
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        elapsed = (time.perf_counter() - started) * 1000
        best = elapsed if best is None else min(best, elapsed)
    return best


def _plan_figures(cursor, sql, params):
    """(tables read, rows read) of an EXPLAIN ANALYZE of `sql`."""
    import json

    cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
    plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    tables, rows = set(), 0

    def walk(node):
        nonlocal rows
        if "Relation Name" in node:
            tables.add(node["Relation Name"])
            rows += node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
            rows += node.get("Rows Removed by Filter", 0)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return tables, rows


def measure_partitions(*, repeats=5, archive_months=3):
    """For `make bench`: a month's orders aggregate on the partitioned table (the partitions
    and rows it reads) against the same on a plain copy of the table with the same index; then
    the archiving of the oldest `archive_months` months and of last month, each timed.
    Everything is rolled back."""
    figures = {}
    month = add_months(month_of(timezone.now()), -1)
    params = [month_start(month), month_start(add_months(month, 1))]
    aggregate = (
        "SELECT currency, count(*), sum(amount) FROM {table} "
        "WHERE ordered_at >= %s AND ordered_at < %s GROUP BY currency"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_order")
        figures["orders"] = cursor.fetchone()[0]
        figures["partitions"] = len(monthly_partitions(ORDERS, cursor)) + 1
        figures["month"] = f"{month:%Y-%m}"
        sql = aggregate.format(table="customers_order")
        tables, figures["rows_read"] = _plan_figures(cursor, sql, params)
        figures["partitions_read"] = len(tables)
        figures["partitioned_ms"] = _best_ms(cursor, sql, params, repeats)
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_plain_order ON COMMIT DROP AS "
            "SELECT * FROM customers_order"
        )
        cursor.execute("CREATE INDEX ON bench_plain_order (ordered_at)")
        cursor.execute("ANALYZE bench_plain_order")
        sql = aggregate.format(table="bench_plain_order")
        _tables, figures["plain_rows_read"] = _plan_figures(cursor, sql, params)
        figures["plain_ms"] = _best_ms(cursor, sql, params, repeats)
        # The month moved to the archive as it would have to be without partitions: deleted
        # row by row from the table and its index (the archive's triggers left out, as they
        # are by archiving), then undone for the partitioned table's turn.
        columns = ", ".join(ORDERS.columns)
        with transaction.atomic():
            cursor.execute("SET LOCAL cims.moving_history = 'on'")
            started = time.perf_counter()
            cursor.execute(
                f"WITH moved AS (DELETE FROM bench_plain_order "
                f"WHERE ordered_at >= %s AND ordered_at < %s RETURNING *) "
                f"INSERT INTO {ORDERS.archive} ({columns}, archived_at) "
                f"SELECT {columns}, now() FROM moved",
                params,
            )
            figures["plain_move_rows"] = cursor.rowcount
            figures["plain_move_seconds"] = time.perf_counter() - started
            transaction.set_rollback(True)
        figures["archived"] = []
        for history in HISTORIES:
            # The oldest months, and last month (the demo data's are small, then large).
            for old in [*monthly_partitions(history, cursor)[:archive_months], month]:
                done = _archive_month(history, old)
                if done is not None:
                    figures["archived"].append(done)
        transaction.set_rollback(True)
    return figures
