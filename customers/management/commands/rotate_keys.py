"""`python manage.py rotate_keys`: re-encrypt customers' sensitive fields with the newest key.

Rows are visited in primary-key order in batches, each its own transaction that locks its rows
(FOR UPDATE SKIP LOCKED, so a row someone is editing is left for a later pass instead of being
waited for). Only rows with a value under an older key version are changed, so the command can be
stopped at any moment and started again, and values stay readable throughout: the old keys stay
in FIELD_ENCRYPTION_KEYS until `rotate_keys --check` reports that nothing uses them.
"""

import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction
from django.utils.translation import gettext as _

from accounts import audit_sealing
from cims import crypto
from customers import search
from customers.fields import encrypted_fields
from customers.models import ArchivedCustomer, Customer

# Passes over the table before giving up on rows that stayed locked by other transactions.
PASSES = 3
# Archived customers keep their values encrypted as live ones: both tables are rotated.
MODELS = (Customer, ArchivedCustomer)


def _columns(model=Customer):
    return [field.column for field in encrypted_fields(model)]


def _outdated(version, model=Customer):
    """SQL: some value of the row is not under key `version` (get_byte(NULL) is NULL)."""
    columns = _columns(model)
    return "(" + " OR ".join(f"get_byte({c}, 1) <> {int(version)}" for c in columns) + ")"


def outdated_counts():
    """{key version: number of values under it} for every version but the newest."""
    current = crypto.current_version()
    parts = [
        f"SELECT get_byte({c}, 1) FROM {model._meta.db_table} WHERE {c} IS NOT NULL"
        for model in MODELS
        for c in _columns(model)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v, count(*) FROM ({' UNION ALL '.join(parts)}) AS t(v) "
            "WHERE v <> %s GROUP BY v ORDER BY v",
            [current],
        )
        return dict(cursor.fetchall())


def rotate_batch(*, after, batch_size, reindex=False, model=Customer):
    """Re-encrypt the next `batch_size` rows of `model` after primary key `after` that need it.

    Returns (last primary key seen or None at the end, rows changed, unreadable values). With
    `reindex`, every row is visited and its blind indexes are computed again as well.
    """
    table, fields = model._meta.db_table, encrypted_fields(model)
    current = crypto.current_version()
    condition = "TRUE" if reindex else _outdated(current, model)
    columns = [f.column for f in fields]
    changed, changed_unindexed, unreadable = [], [], []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {', '.join(columns)} FROM {table} WHERE id > %s AND {condition} "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [after, batch_size],
        )
        rows = cursor.fetchall()
        for pk, *blobs in rows:
            sealed, plain, resealed, readable = [], {}, False, True
            for field, blob in zip(fields, blobs, strict=True):
                blob = None if blob is None else bytes(blob)
                if blob is not None and (reindex or crypto.key_version(blob) != current):
                    try:
                        plain[field.name] = field.open(blob, pk)
                    except crypto.DecryptionError:
                        unreadable.append(f"{table}.{field.column}.{pk}")
                        readable = False
                    else:
                        if crypto.key_version(blob) != current:
                            blob, resealed = field.seal(plain[field.name], pk), True
                sealed.append(blob)
            if reindex and not readable:
                # Indexes computed without the unreadable value would drop the row from exact
                # search and from the uniqueness check: its old ones are kept.
                if resealed:
                    changed_unindexed.append([pk, *sealed])
            elif reindex:
                email_index = search.email_index(plain.get("email", ""))
                changed.append(
                    [pk, *sealed, email_index, *search.phone_indexes(plain.get("phone"))]
                )
            elif resealed:
                changed.append([pk, *sealed])
        if changed:
            _write(cursor, table, columns, changed, reindex)
        if changed_unindexed:
            _write(cursor, table, columns, changed_unindexed, reindex=False)
    count = len(changed) + len(changed_unindexed)
    return (rows[-1][0] if rows else None), count, unreadable


def _write(cursor, table, columns, rows, reindex):
    if reindex:
        columns = [*columns, "email_index", "phone_index", "phone_last4_index"]
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    placeholders = ", ".join(["%s::uuid[]"] + ["%s::bytea[]"] * len(columns))
    cursor.execute(
        f"UPDATE {table} AS c SET {assignments} FROM unnest({placeholders}) "
        f"AS v(id, {', '.join(columns)}) WHERE c.id = v.id",
        [list(column) for column in zip(*rows, strict=True)],
    )


class Command(BaseCommand):
    # Translated when the command is loaded: argparse needs plain strings.
    help = _(
        "Re-encrypt customers' phone, email, birthday and street with the newest key in "
        "FIELD_ENCRYPTION_KEYS, in batches. It can be interrupted and run again; older keys "
        "may be removed once --check reports that no value uses them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help=_("Rows per batch, each batch its own transaction (default 1,000)."),
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=_("Stop after changing about this many rows (the next run continues)."),
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help=_("Change nothing; fail if any value is still under an older key."),
        )
        parser.add_argument(
            "--reindex",
            action="store_true",
            help=_(
                "Also compute every blind index again, after BLIND_INDEX_KEY changed. Visits "
                "every row; run it with the application stopped."
            ),
        )

    def handle(self, *args, batch_size, limit, check, reindex, **options):
        if batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        current = crypto.current_version()
        if check:
            return self.check_outdated(current)
        started = time.monotonic()
        self.say(
            _("Re-encrypting with key version %(version)s; older values: %(count)s.")
            % {"version": current, "count": f"{sum(outdated_counts().values()):,}"}
        )
        self.started, self.total, self.unreadable = started, 0, set()
        # Rows locked by someone else are skipped; later passes come back for them.
        for _pass in range(1 if reindex else PASSES):
            changed_in_pass = sum(
                self.rotate_table(model, batch_size, limit, reindex) for model in MODELS
            )
            limited = limit is not None and self.total >= limit
            if limited or not changed_in_pass or not outdated_counts():
                break
        # The keys that seal customers' audit details are under the same keyring.
        rewrapped = audit_sealing.rewrap_keys(batch_size=batch_size)
        if rewrapped:
            self.say(_("%(count)s audit keys re-encrypted.") % {"count": f"{rewrapped:,}"})
        total, unreadable = self.total, self.unreadable
        remaining = outdated_counts()
        for value in sorted(unreadable):
            self.stderr.write(_("Unreadable, left as it was: %(value)s") % {"value": value})
        self.say(
            _("Done: %(count)s rows changed; %(remaining)s values remain under older keys.")
            % {"count": f"{total:,}", "remaining": f"{sum(remaining.values()):,}"}
        )

    def rotate_table(self, model, batch_size, limit, reindex):
        """One pass over the rows of `model`; returns how many it changed."""
        after, changed_in_pass = uuid.UUID(int=0), 0
        while after is not None and (limit is None or self.total < limit):
            size = batch_size if limit is None else min(batch_size, limit - self.total)
            after, changed, bad = rotate_batch(
                after=after, batch_size=size, reindex=reindex, model=model
            )
            reset_queries()  # with DEBUG on, Django would keep every batch's SQL
            self.total, changed_in_pass = self.total + changed, changed_in_pass + changed
            self.unreadable.update(bad)
            if changed:
                self.say(
                    _("%(count)s rows re-encrypted (%(seconds).0f s)")
                    % {"count": f"{self.total:,}", "seconds": time.monotonic() - self.started}
                )
        return changed_in_pass

    def check_outdated(self, current):
        remaining = outdated_counts()
        if keys := audit_sealing.outdated_key_count():
            remaining["audit keys"] = keys
        for version, count in remaining.items():
            self.say(
                _("Key version %(version)s: %(count)s values.")
                % {"version": version, "count": f"{count:,}"}
            )
        if remaining:
            raise CommandError(
                _("Values remain under older keys: run rotate_keys before removing them.")
            )
        self.say(_("Every value uses key version %(version)s.") % {"version": current})

    def say(self, text):
        self.stdout.write(text)
        self.stdout.flush()
