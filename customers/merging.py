"""Merging two customers into one, and undoing a merge: where customers, their records, their
shares and the intake's submissions meet.

A merge keeps one customer (the survivor) with values chosen field by field, moves every record
that points at the other customer to it, and deletes the other. What undoing needs is kept in a
Merge row: both customers' stored rows as PostgreSQL's to_jsonb gives them (encrypted columns
stay the ciphertext bytes they were stored as, valid again once put back under the same id),
the ids of the records moved, and the rows removed because the survivor already had their like.
"""

import datetime
import json
import math

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import audit
from customers.fields import EncryptedMixin
from customers.models import (
    ArchivedInteraction,
    ArchivedOrder,
    Customer,
    CustomerTeamPermission,
    CustomerUserPermission,
    DuplicateCandidate,
    DuplicateDismissal,
    Merge,
)

# The values staff choose between, in groups that only make sense together (an address is
# taken whole: a street of one customer in the city of the other would be nobody's address).
ALL_FIELD_GROUPS = [
    ("name", gettext_lazy("Name"), ("display_name", "family_name", "given_name")),
    ("gender", gettext_lazy("Gender"), ("gender",)),
    ("birthday", gettext_lazy("Birthday"), ("birthday",)),
    ("phone", gettext_lazy("Mobile phone"), ("phone",)),
    ("email", gettext_lazy("Email"), ("email",)),
    ("company", gettext_lazy("Company"), ("company",)),
    ("job_title", gettext_lazy("Job title"), ("job_title",)),
    (
        "address",
        gettext_lazy("Address"),
        ("country", "province", "city", "district", "street", "postcode"),
    ),
    ("source", gettext_lazy("Source channel"), ("source",)),
    ("status", gettext_lazy("Status"), ("status",)),
    ("owner", gettext_lazy("Owner"), ("owner",)),
    ("team", gettext_lazy("Team"), ("team",)),
    ("external_id", gettext_lazy("External ID"), ("external_id",)),
]
_FIELD_NAMES = {f.name for f in Customer._meta.concrete_fields}
FIELD_GROUPS = [g for g in ALL_FIELD_GROUPS if all(f in _FIELD_NAMES for f in g[2])]
NOTES_CHOICES = ("survivor", "merged", "both")

# Columns that every save changes, and columns computed from others: neither is "edited".
BOOKKEEPING = {"version", "updated_at", "updated_by_id"}
DERIVED = {
    "name_pinyin",
    "search_text",
    "search_keys",
    "email_index",
    "phone_index",
    "phone_last4_index",
    "birth_year",
    "consented_purposes",
}
# A blind index (or the birthday's year) goes back together with the encrypted value it is
# computed from.
INDEX_OF = {
    "email": ("email_index",),
    "phone": ("phone_index", "phone_last4_index"),
    "birthday": ("birth_year",),
}

# Records handled by their own rules rather than moved as they are.
SHARE_MODELS = (CustomerUserPermission, CustomerTeamPermission)
SHARE_RANK = {"view_customer": 1, "change_customer": 2, "delete_customer": 3}


class MergeRefused(Exception):
    """A merge or an undo that cannot be done; the message says why, for the user."""


class MergeConflict(MergeRefused):
    """One of the customers was saved by someone else after the page was opened."""

    def __init__(self, customer):
        self.customer = customer
        super().__init__(
            _(
                "%(name)s was changed by %(user)s after you opened this page. Nothing was "
                "merged: look at the customers again and merge once more."
            )
            % {"name": customer, "user": customer.updated_by or _("someone")}
        )


class UndoNeedsConfirmation(MergeRefused):
    """The survivor was edited since the merge, in fields the merge did not set."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(
            _(
                "The kept customer was changed after the merge (%(fields)s). Undoing keeps "
                "those changes; confirm to undo anyway."
            )
            % {"fields": ", ".join(str(f) for f in fields)}
        )


# Rows as stored ----------------------------------------------------------------------------


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


def _loads(value):
    return json.loads(value) if isinstance(value, str) else value


def stored_row(model, pk):
    """The row `pk` of `model` as PostgreSQL's to_jsonb writes it, or None."""
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT to_jsonb(t) FROM {_table(model)} t WHERE t.{pk_column} = %s", [pk])
        row = cursor.fetchone()
    return _loads(row[0]) if row else None


def _stored_rows(model, column, value):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT to_jsonb(t) FROM {_table(model)} t "
            f"WHERE t.{connection.ops.quote_name(column)} = %s",
            [value],
        )
        return [_loads(row[0]) for row in cursor.fetchall()]


def _table_columns(model):
    with connection.cursor() as cursor:
        return [
            c.name
            for c in connection.introspection.get_table_description(cursor, model._meta.db_table)
        ]


def insert_rows(model, rows, *, skip_existing=True):
    """Put snapshots back as they were, ids included.

    With `skip_existing`, a row whose like exists is skipped; without, it is an IntegrityError.
    """
    if not rows:
        return 0
    present = set(_table_columns(model))
    inserted = 0
    for row in rows:
        columns = ", ".join(connection.ops.quote_name(c) for c in row if c in present)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_table(model)} ({columns}) "
                f"SELECT {columns} FROM jsonb_populate_record(NULL::{_table(model)}, %s::jsonb)"
                + (" ON CONFLICT DO NOTHING" if skip_existing else ""),
                [json.dumps(row)],
            )
            inserted += cursor.rowcount
    return inserted


def _write_row(model, row):
    """Overwrite the stored row with the snapshot's values (same id)."""
    present = set(_table_columns(model))
    pk_column = model._meta.pk.column
    names = [c for c in row if c in present and c != pk_column]
    columns = ", ".join(connection.ops.quote_name(c) for c in names)
    values = ", ".join(f"r.{connection.ops.quote_name(c)}" for c in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(model)} t SET ({columns}) = ROW({values}) "
            f"FROM jsonb_populate_record(NULL::{_table(model)}, %s::jsonb) r "
            f"WHERE t.{connection.ops.quote_name(pk_column)} = %s",
            [json.dumps(row), row[pk_column]],
        )


def _plain(row, column, pk):
    """A column's value from a snapshot, decrypted (in memory only) when it is encrypted."""
    value = row.get(column)
    field = _ENCRYPTED.get(column)
    if field is None:
        return value
    if value is None:
        return field.empty_value
    return field.open(bytes.fromhex(value[2:]), pk)


_ENCRYPTED = {f.column: f for f in Customer._meta.concrete_fields if isinstance(f, EncryptedMixin)}


# Records that point at customers -----------------------------------------------------------


def _references():
    """(model, foreign key) of every record that points at a customer and moves with it."""
    # Archived history keeps its customer as a plain id, without a foreign key: it moves too.
    for model in (ArchivedInteraction, ArchivedOrder):
        yield model, model._meta.get_field("customer_id")
    own = {Merge, DuplicateCandidate, DuplicateDismissal, *SHARE_MODELS}
    for model in apps.get_models(include_auto_created=True):
        if model in own:
            continue
        for field in model._meta.concrete_fields:
            # A row keyed by its customer (reports.CustomerMetrics) is the customer's own, kept
            # by triggers from the records that move: it stays, and goes with the customer.
            if (
                field.is_relation
                and (field.many_to_one or field.one_to_one)
                and field.related_model is Customer
                and not field.primary_key
            ):
                yield model, field


def _moved_key(model, field):
    return f"{model._meta.label_lower}.{field.column}"


def _from_moved_key(key):
    label, _dot, column = key.rpartition(".")
    model = apps.get_model(label)
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    return model, field


def _move(model, column, ids, old, new):
    """Point the records `ids` (or all those of `old` when None) at `new`; return their ids."""
    pk = connection.ops.quote_name(model._meta.pk.column)
    column = connection.ops.quote_name(column)
    condition, params = f"{column} = %s", [old]
    if ids is not None:
        condition += f" AND {pk} = ANY(%s)"
        params.append(list(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(model)} SET {column} = %s WHERE {condition} RETURNING {pk}",
            [new, *params],
        )
        return [row[0] for row in cursor.fetchall()]


def _jsonable_ids(ids):
    return [str(pk) if not isinstance(pk, int) else pk for pk in ids]


# Merging -----------------------------------------------------------------------------------


def merged_values(survivor, merged, *, take, notes, attributes):
    """{field: value} of what changes on the survivor.

    `take` holds the FIELD_GROUPS keys whose values come from the merged customer, `notes` is
    one of NOTES_CHOICES and `attributes` the custom attribute keys whose value comes from it.
    Tags are combined; attributes only the merged customer has are kept. A value the survivor
    keeps is not read, so an encrypted one is neither decrypted nor written again.
    """
    values = {}
    for key, _label, fields in FIELD_GROUPS:
        if key not in take:
            continue
        for name in fields:
            field = Customer._meta.get_field(name)
            values[name] = getattr(merged, field.attname if field.is_relation else name)
    values["tags"] = list(dict.fromkeys([*survivor.tags, *merged.tags]))
    combined = dict(survivor.attributes)
    for key, value in merged.attributes.items():
        if key not in combined or key in attributes:
            combined[key] = value
    values["attributes"] = combined
    texts = {
        "survivor": [survivor.notes],
        "merged": [merged.notes],
        "both": list(dict.fromkeys([survivor.notes.strip(), merged.notes.strip()])),
    }[notes]
    values["notes"] = "\n\n".join(t for t in texts if t)
    return values


def _audited(customer):
    """The values the audit trail compares, sensitive ones masked by audit.changes."""
    values = {}
    for _key, _label, fields in FIELD_GROUPS:
        for name in fields:
            field = Customer._meta.get_field(name)
            value = getattr(customer, field.attname if field.is_relation else name)
            values[name] = value
    values["tags"] = list(customer.tags)
    values["notes"] = customer.notes
    for key, value in customer.attributes.items():
        values[f"attributes.{key}"] = value
    return values


def _lock(*pks):
    """Lock the customers (in id order, so two merges cannot deadlock); their versions."""
    return dict(
        Customer.objects.select_for_update()
        .filter(pk__in=pks)
        .order_by("pk")
        .values_list("pk", "version")
    )


@transaction.atomic
def merge_customers(
    *,
    survivor,
    merged,
    user,
    survivor_version,
    merged_version,
    take=(),
    notes="both",
    attributes=(),
):
    """Merge `merged` into `survivor`; returns the Merge.

    Refused (MergeConflict) when either customer's version is no longer the one the user saw.
    """
    if survivor.pk == merged.pk:
        raise MergeRefused(_("A customer cannot be merged with itself."))
    versions = _lock(survivor.pk, merged.pk)
    for customer, expected in ((survivor, survivor_version), (merged, merged_version)):
        if customer.pk not in versions:
            raise MergeRefused(
                _("%(name)s no longer exists: it was deleted or merged meanwhile.")
                % {"name": customer}
            )
        if versions[customer.pk] != expected:
            raise MergeConflict(Customer.objects.select_related("updated_by").get(pk=customer.pk))
    # Read again under the lock: the versions say nothing changed, but now nothing can.
    survivor = Customer.objects.get(pk=survivor.pk)
    merged = Customer.objects.get(pk=merged.pk)
    # Audited from a copy: reading an encrypted value decrypts it, and a decrypted value is
    # written again (with a new nonce) when the survivor is saved.
    before = _audited(Customer.objects.get(pk=survivor.pk))
    survivor_before = stored_row(Customer, survivor.pk)
    merged_row = stored_row(Customer, merged.pk)
    pair = DuplicateCandidate.objects.of(survivor, merged).values("score", "reasons").first()

    moved, removed = {}, {}
    for model, field in _references():
        ids = _move(model, field.column, None, merged.pk, survivor.pk)
        if ids:
            moved[_moved_key(model, field)] = _jsonable_ids(ids)
    for model in SHARE_MODELS:
        _merge_shares(model, survivor, merged, moved, removed)
    _merge_dismissals(survivor, merged, moved, removed)

    values = merged_values(survivor, merged, take=set(take), notes=notes, attributes=attributes)
    # Email, phone and external id are unique: the merged customer goes first, within this
    # transaction, so that the survivor can take its values.
    Customer.objects.filter(pk=merged.pk).delete()
    for name, value in values.items():
        field = Customer._meta.get_field(name)
        setattr(survivor, field.attname if field.is_relation else name, value)
    if not survivor.save_if_unchanged(expected_version=survivor_version, user=user):
        raise MergeConflict(survivor)

    merge = Merge.objects.create(
        survivor=survivor,
        merged_id=merged.pk,
        merged_name=merged.display_name[:200],
        merged_by=user,
        survivor_version=survivor.version,
        choices={"take": sorted(take), "notes": notes, "attributes": sorted(attributes)},
        survivor_before=survivor_before,
        survivor_after=stored_row(Customer, survivor.pk),
        merged_row=merged_row,
        moved=moved,
        removed=removed,
        candidate=pair and {"score": pair["score"], "reasons": pair["reasons"]},
    )
    data = {
        "merge": str(merge.pk),
        "merged": {"id": str(merged.pk), "name": merged.display_name},
        "kept": {"id": str(survivor.pk), "name": survivor.display_name},
        "taken_from_merged": sorted(take),
        "notes": notes,
        "attributes_from_merged": sorted(attributes),
        "moved": {key: len(ids) for key, ids in moved.items()},
        "changes": audit.changes(before, _audited(survivor)),
    }
    audit.record(audit.Action.CUSTOMER_MERGE, target=survivor, data=data)
    # The merged customer's own history says where it went.
    audit.record(audit.Action.CUSTOMER_MERGE, target=merge, customer=merged.pk, data=data)
    return merge


def _merge_shares(model, survivor, merged, moved, removed):
    """Give the survivor the merged customer's shares, one per person or team and level.

    A share the survivor already has at the same or a higher level makes the merged customer's
    redundant (removed); a higher one replaces the survivor's lower one.
    """
    subject = "user_id" if model is CustomerUserPermission else "group_id"
    rows = list(
        model.objects.filter(content_object_id__in=[survivor.pk, merged.pk]).values(
            "pk", subject, "content_object_id", "permission__codename"
        )
    )
    kept = {}
    for row in rows:
        if row["content_object_id"] == survivor.pk:
            kept.setdefault(row[subject], []).append(row)
    to_move, to_remove = [], set()
    for row in rows:
        if row["content_object_id"] != merged.pk:
            continue
        codename = row["permission__codename"]
        rank = SHARE_RANK.get(codename)
        existing = kept.get(row[subject], [])
        if any(other["permission__codename"] == codename for other in existing) or (
            rank and any(SHARE_RANK.get(o["permission__codename"], 0) >= rank for o in existing)
        ):
            to_remove.add(row["pk"])
            continue
        to_move.append(row["pk"])
        for other in existing:
            if rank and SHARE_RANK.get(other["permission__codename"], rank) < rank:
                to_remove.add(other["pk"])
    label = model._meta.label_lower
    if to_remove:
        removed[label] = [stored_row(model, pk) for pk in to_remove]
        model.objects.filter(pk__in=to_remove).delete()
    if to_move:
        ids = _move(model, "content_object_id", to_move, merged.pk, survivor.pk)
        moved[f"{label}.content_object_id"] = ids


def _merge_dismissals(survivor, merged, moved, removed):
    """ "Not duplicates" said of the merged customer holds for the survivor, who is them."""
    rows = list(DuplicateDismissal.objects.involving(merged))
    if not rows:
        return
    label = DuplicateDismissal._meta.label_lower
    removed[label] = [stored_row(DuplicateDismissal, row.pk) for row in rows]
    DuplicateDismissal.objects.filter(pk__in=[row.pk for row in rows]).delete()
    created = []
    for row in rows:
        other = row.customer_b_id if row.customer_a_id == merged.pk else row.customer_a_id
        if other == survivor.pk:
            continue
        a, b = DuplicateDismissal.ordered(survivor, other)
        dismissal, new = DuplicateDismissal.objects.get_or_create(
            customer_a_id=a,
            customer_b_id=b,
            defaults={"dismissed_by_id": row.dismissed_by_id, "dismissed_at": row.dismissed_at},
        )
        if new:
            created.append(dismissal.pk)
    if created:
        moved[f"created:{label}"] = created


# Undoing -----------------------------------------------------------------------------------


def undo_deadline(merge):
    return merge.created_at + datetime.timedelta(days=settings.MERGE_UNDO_DAYS)


def _labels():
    labels = {f.column: f.verbose_name for f in Customer._meta.concrete_fields}
    labels["tags"] = Customer._meta.get_field("tags").verbose_name
    return labels


def _changes_between(old, new, pk):
    """Columns (and "attributes.<key>", tag names as "tags") whose value differs."""
    changed = set()
    for column in set(old) | set(new):
        if column in BOOKKEEPING or column in DERIVED or column == "id":
            continue
        if column == "attributes":
            a, b = old.get(column) or {}, new.get(column) or {}
            changed.update(f"attributes.{k}" for k in set(a) | set(b) if a.get(k) != b.get(k))
        elif column == "tags":
            if set(old.get(column) or []) != set(new.get(column) or []):
                changed.add("tags")
        elif _plain(old, column, pk) != _plain(new, column, pk):
            changed.add(column)
    return changed


def undo_check(merge):
    """(what blocks the undo, or None; the fields edited since the merge that undo keeps).

    The survivor may have been edited since the merge. Fields the merge set and someone edited
    since cannot be undone without losing that edit: the undo is refused. Fields only edited
    since are kept, and tags and custom attributes are undone item by item, so an undo that
    touches only what the merge changed is safe and is offered.
    """
    if merge.undone_at is not None:
        return _("This merge was already undone."), []
    if merge.snapshots_cleared_at is not None or timezone.now() > undo_deadline(merge):
        return (
            _("A merge can be undone for %(days)s days; this one is older.")
            % {"days": settings.MERGE_UNDO_DAYS},
            [],
        )
    if Customer.objects.filter(pk=merge.merged_id).exists():
        return _("The merged customer exists again."), []
    current = stored_row(Customer, merge.survivor_id)
    if current is None:
        later = Merge.objects.filter(merged_id=merge.survivor_id, undone_at__isnull=True).first()
        if later is not None:
            return (
                _(
                    "The kept customer was itself merged into another customer on %(date)s. "
                    "Undo that merge first."
                )
                % {"date": timezone.localtime(later.created_at).strftime("%Y-%m-%d %H:%M")},
                [],
            )
        return _("The kept customer has been deleted."), []
    pk = merge.survivor_id
    set_by_merge = _changes_between(merge.survivor_before, merge.survivor_after, pk)
    edited_since = _changes_between(merge.survivor_after, current, pk)
    # Tags are undone one by one (below), so they never conflict.
    clashes = (set_by_merge & edited_since) - {"tags"}
    labels = _labels()

    def label(name):
        return name.partition(".")[2] if name.startswith("attributes.") else labels.get(name, name)

    if clashes:
        return (
            _(
                "Since the merge, someone changed values that the merge set (%(fields)s). "
                "Undoing it would overwrite those changes: edit the customer by hand instead."
            )
            % {"fields": ", ".join(sorted(str(label(n)) for n in clashes))},
            [],
        )
    return None, sorted(str(label(n)) for n in edited_since)


def _restored_survivor(merge, current):
    """The survivor's row with what the merge changed put back and later edits kept."""
    pk = merge.survivor_id
    before, after = merge.survivor_before, merge.survivor_after
    row = dict(current)
    set_by_merge = _changes_between(before, after, pk)
    for column in set_by_merge:
        if column.startswith("attributes.") or column in ("tags", "attributes"):
            continue
        row[column] = before.get(column)
        for index in INDEX_OF.get(column, ()):
            row[index] = before.get(index)
    # Tags: remove what the merge added, unless someone removed and added it again since.
    added = set(after.get("tags") or []) - set(before.get("tags") or [])
    removed_by_merge = set(before.get("tags") or []) - set(after.get("tags") or [])
    tags = [t for t in current.get("tags") or [] if t not in added]
    tags += [t for t in before.get("tags") or [] if t in removed_by_merge and t not in tags]
    row["tags"] = tags
    attributes = dict(current.get("attributes") or {})
    old, new = before.get("attributes") or {}, after.get("attributes") or {}
    for key in set(old) | set(new):
        if old.get(key) == new.get(key):
            continue
        if key in old:
            attributes[key] = old[key]
        else:
            attributes.pop(key, None)
    row["attributes"] = attributes
    return row


@transaction.atomic
def undo_merge(merge, *, user, confirmed=False):
    """Bring the merged customer back as it was, with its records, and restore the survivor.

    Raises MergeRefused when it cannot be done, and UndoNeedsConfirmation when the survivor was
    edited since in ways the undo keeps and `confirmed` is false.
    """
    merge = Merge.objects.select_for_update().get(pk=merge.pk)
    _lock(merge.survivor_id)
    problem, edited = undo_check(merge)
    if problem:
        raise MergeRefused(problem)
    if edited and not confirmed:
        raise UndoNeedsConfirmation(edited)
    current = stored_row(Customer, merge.survivor_id)
    row = _restored_survivor(merge, current)
    row.update(
        version=current["version"] + 1,
        updated_at=timezone.now().isoformat(),
        updated_by_id=user.pk,
    )
    survivor_name = current["display_name"]
    try:
        with transaction.atomic():
            # The survivor gives back the values it took before the merged customer returns
            # with them: email, phone and external id are unique.
            _write_row(Customer, row)
            _refresh_search_columns(merge.survivor_id)
            insert_rows(Customer, [merge.merged_row], skip_existing=False)
            moved_back = _move_back(merge)
            for label, rows in merge.removed.items():
                insert_rows(apps.get_model(label), rows)
            if merge.candidate:
                a, b = DuplicateCandidate.ordered(merge.survivor_id, merge.merged_id)
                DuplicateCandidate.objects.get_or_create(
                    customer_a_id=a, customer_b_id=b, defaults=merge.candidate
                )
    except IntegrityError as error:
        raise MergeRefused(
            _(
                "Another customer now has the email, mobile number or external ID that one of "
                "these customers had before the merge. Change it there first."
            )
        ) from error
    merge.undone_at, merge.undone_by = timezone.now(), user
    merge.save(update_fields=["undone_at", "undone_by"])
    restored = Customer.objects.get(pk=merge.merged_id)
    data = {
        "merge": str(merge.pk),
        "merged": {"id": str(merge.merged_id), "name": restored.display_name},
        "kept": {"id": str(merge.survivor_id), "name": survivor_name},
        "moved_back": moved_back,
        "kept_later_edits": edited,
    }
    audit.record(audit.Action.CUSTOMER_UNMERGE, target=merge, customer=merge.survivor_id, data=data)
    audit.record(audit.Action.CUSTOMER_UNMERGE, target=restored, data=data)
    return restored


def _refresh_search_columns(pk):
    customer = Customer.objects.get(pk=pk)
    customer.refresh_search_fields()
    Customer.objects.filter(pk=pk).update(
        name_pinyin=customer.name_pinyin,
        search_text=customer.search_text,
        search_keys=customer.search_keys,
    )


def _move_back(merge):
    """Point the moved records at the merged customer again; {kind: how many}."""
    counts = {}
    for key, ids in merge.moved.items():
        if key.startswith("created:"):
            model = apps.get_model(key.removeprefix("created:"))
            model.objects.filter(pk__in=ids).delete()
            continue
        model, field = _from_moved_key(key)
        back = _move(model, field.column, ids, merge.survivor_id, merge.merged_id)
        counts[key] = len(back)
    return counts


def moved_summary(merge):
    """[(label, count)] of the records a merge moved, for its page."""
    rows = []
    for key, ids in merge.moved.items():
        if key.startswith("created:"):
            continue
        model, _field = _from_moved_key(key)
        rows.append((model._meta.verbose_name_plural, len(ids)))
    return rows


def days_left(merge):
    return max(0, math.ceil((undo_deadline(merge) - timezone.now()).total_seconds() / 86400))


def clear_expired_snapshots():
    """Forget what undoing needs of merges too old to undo: it holds the merged customer's data."""
    cutoff = timezone.now() - datetime.timedelta(days=settings.MERGE_UNDO_DAYS)
    return Merge.objects.filter(created_at__lt=cutoff, snapshots_cleared_at__isnull=True).update(
        survivor_before={},
        survivor_after={},
        merged_row={},
        removed={},
        moved={},
        snapshots_cleared_at=timezone.now(),
    )
