"""Moving inactive customers out of the live tables into the archive, and back.

A customer is inactive when nothing happened to them for ARCHIVE_CUSTOMERS_AFTER_MONTHS: no
edit (updated_at), no order or interaction (by when it happened or was recorded), no consent
recorded, no form submitted, and no submitted change waiting for review.

Archiving works on batches of customers, one transaction each, in set-based statements: the
customer rows are copied into customers_archivedcustomer with their small related rows as
to_jsonb snapshots (`related`), their interactions and orders into the archive tables, and the
live rows are deleted (the database cascades to what the snapshots hold). Encrypted columns are
copied as the ciphertext bytes they are, still bound to customers_customer and the same row id,
so they read the same in the archive and after a restore. Audit entries reference customers by
id without a foreign key and stay as they are.

Restoring puts everything back under the same ids. The archive tables for interactions and
orders also receive old months of live customers' history; a restore moves back only the rows
archived together with the customer (same archived_at), so history archived for its age stays
archived as it would for any live customer.

An archived customer can be erased (customers.erasure): the row stays in the archive as a
tombstone, and restoring it brings back a live tombstone with its orders and interactions, so
the figures count it the same way on either side.
"""

import calendar
import datetime
import json
import logging
import time
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from customers.models import (
    ArchivedCustomer,
    ArchivedInteraction,
    ArchivedOrder,
    Consent,
    Customer,
    CustomerTeamPermission,
    CustomerUserPermission,
    DuplicateCandidate,
    DuplicateDismissal,
    Erasure,
    Interaction,
    Order,
)
from reports.models import summaries

logger = logging.getLogger(__name__)

# Columns of the archive row that the live row does not have.
ARCHIVE_ONLY = {"archived_at", "share_keys", "related"}


class RestoreRefused(Exception):
    """A restore that cannot be done; the message says why, for the user."""


def _q(name):
    return connection.ops.quote_name(name)


def _table(model):
    return _q(model._meta.db_table)


def _columns(model, exclude=()):
    return [f.column for f in model._meta.concrete_fields if f.column not in exclude]


def _column_list(columns, prefix=""):
    return ", ".join(f"{prefix}{_q(c)}" for c in columns)


def _related_models():
    from intake.models import ProposedChange, Submission
    from reports.models.metrics import CustomerMetrics

    return ProposedChange, Submission, CustomerMetrics


def handled_references():
    """(model label, column) of every foreign key to customers that archiving carries over.

    A test compares this with the models, so that a new reference cannot be lost unnoticed.
    """
    return {
        ("customers.interaction", "customer_id"),
        ("customers.order", "customer_id"),
        ("customers.consent", "customer_id"),
        ("customers.customeruserpermission", "content_object_id"),
        ("customers.customerteampermission", "content_object_id"),
        ("customers.duplicatecandidate", "customer_a_id"),
        ("customers.duplicatecandidate", "customer_b_id"),
        ("customers.duplicatedismissal", "customer_a_id"),
        ("customers.duplicatedismissal", "customer_b_id"),
        # No database constraint: the merge stays and finds its survivor again on restore.
        ("customers.merge", "survivor_id"),
        ("reports.customermetrics", "customer_id"),
        ("intake.submission", "customer_id"),
        ("intake.proposedchange", "customer_id"),
        ("intake.proposedchange", "conflicting_customer_id"),
    }


# Which customers are inactive ------------------------------------------------------------


def months_before(moment, months):
    """The same day and time `months` calendar months earlier (the month's last day if shorter)."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def archive_cutoff(months=None, *, now=None):
    """The moment before which a customer's last activity makes them inactive, or None when
    archiving is off."""
    months = settings.ARCHIVE_CUSTOMERS_AFTER_MONTHS if months is None else months
    if months <= 0:
        return None
    return months_before(now or timezone.now(), months)


def _inactive_sql():
    """SQL condition on customers_customer c: no activity since %(cutoff)s."""
    from intake.models import ProposedChange, Submission

    return (
        "c.updated_at < %(cutoff)s"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(Order)} o WHERE o.customer_id = c.id"
        " AND (o.ordered_at >= %(cutoff)s OR o.created_at >= %(cutoff)s))"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(Interaction)} i WHERE i.customer_id = c.id"
        " AND (i.occurred_at >= %(cutoff)s OR i.created_at >= %(cutoff)s))"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(Consent)} k WHERE k.customer_id = c.id"
        " AND k.recorded_at >= %(cutoff)s)"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(Submission)} s WHERE s.customer_id = c.id"
        " AND s.created_at >= %(cutoff)s)"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(ProposedChange)} p WHERE p.customer_id = c.id"
        " AND p.decision = '')"
    )


def inactive_counts(cutoff):
    """{"customers", "interactions", "orders"}: what archiving before `cutoff` would move."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*),"
            f" coalesce(sum((SELECT count(*) FROM {_table(Interaction)} i"
            " WHERE i.customer_id = c.id)), 0),"
            f" coalesce(sum((SELECT count(*) FROM {_table(Order)} o"
            " WHERE o.customer_id = c.id)), 0)"
            f" FROM {_table(Customer)} c WHERE {_inactive_sql()}",
            {"cutoff": cutoff},
        )
        customers, interactions, orders = cursor.fetchone()
    return {"customers": customers, "interactions": interactions, "orders": orders}


# Archiving -------------------------------------------------------------------------------


@dataclass
class ArchiveRun:
    customers: int = 0
    interactions: int = 0
    orders: int = 0
    batches: int = 0
    seconds: float = 0.0
    cutoff: datetime.datetime | None = None
    # The last (updated_at, id) seen, so that customers skipped in a batch are not read again.
    position: tuple = field(default=(None, None), repr=False)


def archive_inactive(*, cutoff=None, batch_size=None, limit=None, progress=None):
    """Archive every customer inactive since `cutoff` (the setting's by default), in batches.

    Each batch is its own transaction, so a run can stop at any point and the next continues.
    Customers locked by someone else are skipped and found by the next run. Returns an
    ArchiveRun with the counts moved.
    """
    cutoff = archive_cutoff() if cutoff is None else cutoff
    run = ArchiveRun(cutoff=cutoff)
    if cutoff is None:
        return run
    batch_size = batch_size or settings.ARCHIVE_BATCH_SIZE
    started = time.monotonic()
    while limit is None or run.customers < limit:
        size = batch_size if limit is None else min(batch_size, limit - run.customers)
        if not archive_batch(run, size):
            break
        if progress:
            progress(run)
    run.seconds = time.monotonic() - started
    return run


def _select_batch(cursor, run, size):
    last_time, last_id = run.position
    after = "" if last_time is None else " AND (c.updated_at, c.id) > (%(time)s, %(id)s)"
    cursor.execute(
        f"SELECT c.id, c.updated_at FROM {_table(Customer)} c WHERE {_inactive_sql()}{after}"
        " ORDER BY c.updated_at, c.id LIMIT %(size)s FOR UPDATE OF c SKIP LOCKED",
        {"cutoff": run.cutoff, "time": last_time, "id": last_id, "size": size},
    )
    return cursor.fetchall()


def archive_batch(run, size):
    """Archive the next `size` inactive customers after run.position; False when none is left."""
    with transaction.atomic(), connection.cursor() as cursor:
        rows = _select_batch(cursor, run, size)
        if not rows:
            return False
        run.position = (rows[-1][1], rows[-1][0])
        customers, interactions, orders = _archive(cursor, [row[0] for row in rows])
    run.customers += customers
    run.interactions += interactions
    run.orders += orders
    run.batches += 1
    return True


def archive_customers(ids):
    """Archive these customers now, whatever their activity (an operator's or a test's choice).
    Returns (customers, interactions, orders) moved."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {_table(Customer)} WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
            [[str(pk) for pk in ids]],
        )
        return _archive(cursor, [row[0] for row in cursor.fetchall()])


def _archive(cursor, ids):
    """Move the locked customers `ids` and everything about them to the archive."""
    moment = timezone.now()
    _copy_customers(cursor, ids, moment)
    interactions = _move_history(cursor, Interaction, ArchivedInteraction, ids, moment)
    orders = _move_history(cursor, Order, ArchivedOrder, ids, moment)
    cursor.execute(
        f"DELETE FROM {_table(Customer)} WHERE id = ANY(%s)"
        " RETURNING id, display_name, owner_id, team_id",
        [ids],
    )
    deleted = cursor.fetchall()
    summaries.recount_scopes({(owner, team) for _, _, owner, team in deleted})
    # Each entry names the customer by id and name; the row itself is gone by now.
    audit.record_many(
        audit.Action.CUSTOMER_ARCHIVE,
        [Customer(id=pk, display_name=name) for pk, name, _, _ in deleted],
        data=lambda customer: {"archived_at": moment},
    )
    return len(deleted), interactions, orders


def _snapshots(model, column):
    """SQL: the rows of `model` whose `column` is the customer c.id, as a JSON array."""
    return (
        f"(SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]'::jsonb) FROM {_table(model)} x"
        f" WHERE x.{_q(column)} = c.id)"
    )


def _copy_customers(cursor, ids, moment):
    ProposedChange, Submission, CustomerMetrics = _related_models()
    columns = _columns(ArchivedCustomer, exclude=ARCHIVE_ONLY)
    pair = (
        "(SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]'::jsonb) FROM {table} x"
        " WHERE x.customer_a_id = c.id OR x.customer_b_id = c.id)"
    )
    related = (
        "jsonb_build_object("
        f"'consents', {_snapshots(Consent, 'customer_id')},"
        f"'user_shares', {_snapshots(CustomerUserPermission, 'content_object_id')},"
        f"'team_shares', {_snapshots(CustomerTeamPermission, 'content_object_id')},"
        f"'metrics', (SELECT to_jsonb(x) FROM {_table(CustomerMetrics)} x"
        " WHERE x.customer_id = c.id),"
        f"'proposed_changes', {_snapshots(ProposedChange, 'customer_id')},"
        f"'submissions', (SELECT coalesce(jsonb_agg(x.id), '[]'::jsonb)"
        f" FROM {_table(Submission)} x WHERE x.customer_id = c.id),"
        f"'conflicting_changes', (SELECT coalesce(jsonb_agg(x.id), '[]'::jsonb)"
        f" FROM {_table(ProposedChange)} x WHERE x.conflicting_customer_id = c.id),"
        f"'duplicate_candidates', {pair.format(table=_table(DuplicateCandidate))},"
        f"'duplicate_dismissals', {pair.format(table=_table(DuplicateDismissal))}"
        ")"
    )
    share_keys = (
        "ARRAY(SELECT 'user:' || s.user_id || ':' || p.codename"
        f" FROM {_table(CustomerUserPermission)} s JOIN auth_permission p"
        " ON p.id = s.permission_id WHERE s.content_object_id = c.id"
        " UNION SELECT 'group:' || s.group_id || ':' || p.codename"
        f" FROM {_table(CustomerTeamPermission)} s JOIN auth_permission p"
        " ON p.id = s.permission_id WHERE s.content_object_id = c.id)"
    )
    cursor.execute(
        f"INSERT INTO {_table(ArchivedCustomer)} ({_column_list(columns)},"
        " archived_at, share_keys, related)"
        f" SELECT {_column_list(columns, 'c.')}, %s, {share_keys}, {related}"
        f" FROM {_table(Customer)} c WHERE c.id = ANY(%s)",
        [moment, ids],
    )


def _move_history(cursor, live, archive, ids, moment):
    columns = _column_list(_columns(archive, exclude={"archived_at"}))
    cursor.execute(
        f"WITH moved AS (DELETE FROM {_table(live)} WHERE customer_id = ANY(%s)"
        f" RETURNING {columns})"
        f" INSERT INTO {_table(archive)} ({columns}, archived_at)"
        f" SELECT {columns}, %s FROM moved",
        [ids, moment],
    )
    return cursor.rowcount


# Restoring -------------------------------------------------------------------------------


@dataclass
class Restored:
    customer: Customer
    interactions: int
    orders: int
    # Related rows that could not come back because what they point at is gone (a deleted user
    # a customer was shared with, a submission deleted since), by table.
    dropped: dict


def restore_customer(archived, *, user):
    """Move an archived customer and everything archived with them back to the live tables.

    The customer counts as edited by `user` now (so the next archiving run leaves them alone).
    Raises RestoreRefused, changing nothing, when a live customer has since taken the email,
    mobile number or external ID.
    """
    with transaction.atomic():
        archived = ArchivedCustomer.objects.select_for_update().filter(pk=archived.pk).first()
        if archived is None:
            raise RestoreRefused(_("This customer is no longer in the archive."))
        dropped = {}
        with connection.cursor() as cursor:
            _insert_customer(cursor, archived, user)
            interactions = _restore_history(cursor, Interaction, ArchivedInteraction, archived)
            orders = _restore_history(cursor, Order, ArchivedOrder, archived)
            _restore_related(cursor, archived, dropped)
            cursor.execute(f"DELETE FROM {_table(ArchivedCustomer)} WHERE id = %s", [archived.pk])
        summaries.recount_scopes([(archived.owner_id, archived.team_id)])
        customer = Customer.objects.get(pk=archived.pk)
        audit.record(
            audit.Action.CUSTOMER_RESTORE,
            target=customer,
            actor=user,
            data={
                "archived_at": archived.archived_at,
                "interactions": interactions,
                "orders": orders,
                **({"dropped": dropped} if dropped else {}),
            },
        )
    return Restored(customer, interactions, orders, dropped)


def _insert_customer(cursor, archived, user):
    columns = _columns(ArchivedCustomer, exclude=ARCHIVE_ONLY)
    try:
        with transaction.atomic():
            cursor.execute(
                f"INSERT INTO {_table(Customer)} ({_column_list(columns)})"
                f" SELECT {_column_list(columns)} FROM {_table(ArchivedCustomer)} WHERE id = %s",
                [archived.pk],
            )
    except IntegrityError as error:
        raise RestoreRefused(_conflict_message(archived, error)) from error
    # Restoring is an edit: without it the next night's run would archive the customer again.
    cursor.execute(
        f"UPDATE {_table(Customer)} SET updated_at = %s, updated_by_id = %s,"
        " version = version + 1 WHERE id = %s",
        [timezone.now(), user.pk if user else None, archived.pk],
    )


def _conflict_message(archived, error):
    constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", "") or ""
    what = {
        "customer_unique_email": _("email"),
        "customer_unique_phone": _("mobile number"),
        "customer_unique_external_id": _("external ID"),
    }.get(constraint)
    if what is None:
        return _("%(name)s could not be restored: %(error)s") % {
            "name": archived,
            "error": error,
        }
    return _(
        "%(name)s was not restored: a live customer now has the same %(what)s. Change or merge "
        "that customer first."
    ) % {"name": archived, "what": what}


def _restore_history(cursor, live, archive, archived):
    columns = _column_list(_columns(archive, exclude={"archived_at"}))
    cursor.execute(
        f"WITH moved AS (DELETE FROM {_table(archive)} WHERE customer_id = %s"
        f" AND archived_at = %s RETURNING {columns})"
        f" INSERT INTO {_table(live)} ({columns}) SELECT {columns} FROM moved",
        [archived.pk, archived.archived_at],
    )
    return cursor.rowcount


def _restore_related(cursor, archived, dropped):
    ProposedChange, Submission, CustomerMetrics = _related_models()
    related = archived.related or {}
    for key, model in (
        ("consents", Consent),
        ("user_shares", CustomerUserPermission),
        ("team_shares", CustomerTeamPermission),
        ("proposed_changes", ProposedChange),
    ):
        _insert_snapshots(cursor, model, related.get(key, []), dropped)
    if related.get("metrics"):
        # The customer's insert made a metrics row and the orders' inserts counted them again;
        # the scores and lifetime value come back as they were.
        _overwrite_row(cursor, CustomerMetrics, "customer_id", related["metrics"])
    cursor.execute(
        f"UPDATE {_table(Submission)} SET customer_id = %s WHERE id = ANY(%s::uuid[])"
        " AND customer_id IS NULL",
        [archived.pk, related.get("submissions", [])],
    )
    cursor.execute(
        f"UPDATE {_table(ProposedChange)} SET conflicting_customer_id = %s"
        " WHERE id = ANY(%s::uuid[]) AND conflicting_customer_id IS NULL",
        [archived.pk, related.get("conflicting_changes", [])],
    )
    for key, model in (
        ("duplicate_candidates", DuplicateCandidate),
        ("duplicate_dismissals", DuplicateDismissal),
    ):
        _restore_pairs(cursor, archived, key, model, related.get(key, []), dropped)


def _restore_pairs(cursor, archived, key, model, rows, dropped):
    """Pairs with a live partner come back; those whose partner is archived too are handed to
    the partner's archive row, to come back with whichever of the two is restored last."""
    pk = str(archived.pk)
    partners = {
        row["customer_b_id"] if row["customer_a_id"] == pk else row["customer_a_id"]: row
        for row in rows
    }
    # A pair handed over by a partner erased since stays away, as erasure removes live pairs.
    erased = Erasure.objects.filter(customer_id__in=list(partners)).values_list(
        "customer_id", flat=True
    )
    for partner in {str(customer_id) for customer_id in erased}:
        del partners[partner]
    archived_partners = set(
        ArchivedCustomer.objects.filter(pk__in=list(partners)).values_list("pk", flat=True)
    )
    for partner in archived_partners:
        # Appended under the partner's key, so the pair comes back when the partner does.
        cursor.execute(
            f"UPDATE {_table(ArchivedCustomer)} SET related = jsonb_set(related, %s,"
            " coalesce(related -> %s, '[]'::jsonb) || %s::jsonb) WHERE id = %s",
            [[key], key, json.dumps([partners[str(partner)]]), partner],
        )
    archived_partners = {str(partner) for partner in archived_partners}
    live = [row for partner, row in partners.items() if partner not in archived_partners]
    _insert_snapshots(cursor, model, live, dropped)


def _insert_snapshots(cursor, model, rows, dropped):
    """Insert to_jsonb snapshots of `model` back under their ids.

    A nullable reference to a row that is gone comes back empty (as the database would have
    set it on delete); a row whose required reference is gone cannot come back and is counted
    in `dropped`.
    """
    if not rows:
        return
    selected, conditions = [], []
    for f in model._meta.concrete_fields:
        column = f"r.{_q(f.column)}"
        if f.is_relation and f.db_constraint:
            target = f"{_table(f.related_model)} t WHERE t.{_q(f.target_field.column)} = {column}"
            if f.null:
                column = f"(SELECT t.{_q(f.target_field.column)} FROM {target})"
            else:
                conditions.append(f"EXISTS (SELECT 1 FROM {target})")
        selected.append(column)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    cursor.execute(
        f"INSERT INTO {_table(model)} ({_column_list(_columns(model))})"
        f" SELECT {', '.join(selected)}"
        f" FROM jsonb_populate_recordset(NULL::{_table(model)}, %s::jsonb) r{where}"
        " ON CONFLICT DO NOTHING",
        [json.dumps(rows)],
    )
    if cursor.rowcount < len(rows):
        dropped[model._meta.label_lower] = len(rows) - cursor.rowcount


def _overwrite_row(cursor, model, key, row):
    names = [c for c in _columns(model) if c != key]
    cursor.execute(
        f"UPDATE {_table(model)} t SET ({_column_list(names)}) = ROW({_column_list(names, 'r.')})"
        f" FROM jsonb_populate_record(NULL::{_table(model)}, %s::jsonb) r"
        f" WHERE t.{_q(key)} = r.{_q(key)}",
        [json.dumps(row)],
    )


def customer_references():
    """(model label, column) of every foreign key to customers in the installed models."""
    found = set()
    for model in apps.get_models(include_auto_created=True):
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model is Customer:
                found.add((model._meta.label_lower, f.column))
    return found
