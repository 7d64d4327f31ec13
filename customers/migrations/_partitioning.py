"""The conversion of a history table to and from a table partitioned by month, for migrations.

Frozen as of the migration that uses it: the partitions made at run time (customers.partitions)
follow the same naming, `<table>_pYYYYMM` and `<table>_default`.

Both directions build the new table beside the old one, copy every row in one INSERT ... SELECT,
drop the old table and give the new one its name; then put back what the catalogue said the old
table had: its indexes, foreign keys and triggers (those of other apps too, such as the reports'
statement triggers), by their definitions and names.
"""

import datetime
import zoneinfo

# At most this many months before the current one get partitions of their own.
MONTHS_BACK_AT_MOST = 120


def _month(moment, zone):
    local = moment.astimezone(zone)
    return datetime.date(local.year, local.month, 1)


def _next(month):
    return datetime.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _back(month):
    return datetime.date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def _start(month, zone):
    return datetime.datetime(month.year, month.month, 1, tzinfo=zone).isoformat()


def _definitions(cursor, table):
    """The table's indexes (other than its constraints'), foreign keys and user triggers."""
    cursor.execute(
        "SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') "
        "FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' AND conparentid = 0 ORDER BY 1",
        [table],
    )
    foreign_keys = [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for name, definition in cursor.fetchall()
    ]
    cursor.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = %s::regclass AND NOT tgisinternal AND tgparentid = 0 ORDER BY tgname",
        [table],
    )
    triggers = [row[0] for row in cursor.fetchall()]
    return indexes, foreign_keys, triggers


def _swap(cursor, table, new, key, definitions):
    indexes, foreign_keys, triggers = definitions
    cursor.execute(f"INSERT INTO {new} SELECT * FROM {table}")
    cursor.execute(f"DROP TABLE {table}")
    cursor.execute(f"ALTER TABLE {new} RENAME TO {table}")
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
    for statement in [*indexes, *foreign_keys, *triggers]:
        cursor.execute(statement)
    cursor.execute(f"ANALYZE {table}")


def to_partitioned(cursor, table, column, *, time_zone, months_ahead):
    """Make `table` partitioned by month of `column` (months of `time_zone`): a partition for
    every month from its oldest row's (at most MONTHS_BACK_AT_MOST back) to `months_ahead`
    after the current one, and a DEFAULT partition for anything outside."""
    zone = zoneinfo.ZoneInfo(time_zone)
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    definitions = _definitions(cursor, table)
    new = f"{table}_partitioned"
    cursor.execute(
        f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ({column})"
    )
    cursor.execute(f"SELECT now(), min({column}) FROM {table}")
    now, oldest = cursor.fetchone()
    # Rows dated implausibly far back (a typo's year 1900) or ahead go to DEFAULT, rather than
    # a partition for every month in between; archiving or the partitions made ahead later
    # move them into partitions of their own months.
    first = _month(now, zone)
    for _ in range(MONTHS_BACK_AT_MOST):
        first = _back(first)
    month = max(first, _month(min(oldest or now, now), zone))
    last = _month(now, zone)
    for _ in range(months_ahead):
        last = _next(last)
    while month <= last:
        cursor.execute(
            f"CREATE TABLE {table}_p{month:%Y%m} PARTITION OF {new} "
            f"FOR VALUES FROM ('{_start(month, zone)}') TO ('{_start(_next(month), zone)}')"
        )
        month = _next(month)
    cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {new} DEFAULT")
    _swap(cursor, table, new, f"id, {column}", definitions)


def to_plain(cursor, table):
    """Make a partitioned `table` one plain table again, keyed by id alone."""
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    definitions = _definitions(cursor, table)
    new = f"{table}_plain"
    cursor.execute(
        f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE INCLUDING COMMENTS)"
    )
    _swap(cursor, table, new, "id", definitions)
