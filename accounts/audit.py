"""The audit trail: an append-only, hash-chained record of who did what, when and from where.

Any code records an event with one call, inside the transaction of the change it describes, so
a change that is rolled back leaves no entry:

    from accounts import audit
    audit.record(audit.Action.CUSTOMER_UPDATE, target=customer, data={"changes": changes})

Each entry carries the SHA-256 of the previous entry's hash and its own canonical content, so
editing, deleting or reordering a stored entry breaks the chain from that entry on; a database
trigger refuses UPDATE and DELETE, and signed checkpoints of the chain head kept outside the
database catch a chain rewritten from scratch (`python manage.py verify_audit`).

The details of entries about a customer are stored sealed under a key of that customer's, which
erasing the customer destroys (accounts.audit_sealing); reading entries opens them.
"""

import base64
import contextvars
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The hash the first entry chains from.
GENESIS_HASH = "0" * 64
# Any constant both writers agree on: the advisory lock that serialises appends to the chain.
CHAIN_LOCK_KEY = 0x41554449  # "AUDI"


class Action(models.TextChoices):
    LOGIN = "login", _("Signed in")
    LOGIN_FAILED = "login_failed", _("Failed sign-in")
    LOCKOUT = "lockout", _("Locked out")
    LOGOUT = "logout", _("Signed out")
    USER_CREATE = "user.create", _("User created")
    USER_UPDATE = "user.update", _("User changed")
    USER_DEACTIVATE = "user.deactivate", _("User deactivated")
    PASSWORD_CHANGE = "user.password", _("Password changed")
    TWO_FACTOR = "user.two_factor", _("Two-factor authentication changed")
    ROLE_CHANGE = "role.change", _("Role changed")
    TEAM_CHANGE = "team.change", _("Team changed")
    PERMISSION_GRANT = "permission.grant", _("Permission granted")
    PERMISSION_REVOKE = "permission.revoke", _("Permission revoked")
    CUSTOMER_CREATE = "customer.create", _("Customer created")
    CUSTOMER_UPDATE = "customer.update", _("Customer changed")
    CUSTOMER_DELETE = "customer.delete", _("Customer deleted")
    CUSTOMER_MERGE = "customer.merge", _("Customers merged")
    CUSTOMER_UNMERGE = "customer.unmerge", _("Merge undone")
    CUSTOMER_ARCHIVE = "customer.archive", _("Customer archived")
    CUSTOMER_RESTORE = "customer.restore", _("Customer restored from the archive")
    CHANGES_REJECTED = "customer.changes_rejected", _("Submitted changes rejected")
    BULK_ACTION = "customer.bulk", _("Bulk action")
    REVEAL = "customer.reveal", _("Sensitive value revealed")
    CONSENT_CHANGE = "customer.consent", _("Consent recorded")
    DATA_EXPORT = "customer.data_export", _("Customer's data exported")
    EXPORT = "export", _("Export")
    REPORT_DOWNLOAD = "report.download", _("Report downloaded")
    IMPORT = "import", _("Import")
    IMPORT_REVERT = "import.revert", _("Import reverted")
    SETTINGS_CHANGE = "settings.change", _("Settings changed")
    AUDIT_EXPORT = "audit.export", _("Audit trail exported")
    FORM_CREATE = "form.create", _("Form created")
    FORM_UPDATE = "form.update", _("Form changed")
    FORM_PUBLISH = "form.publish", _("Form published")
    FORM_UNPUBLISH = "form.unpublish", _("Form unpublished")
    FORM_DELETE = "form.delete", _("Form deleted")
    FORM_FIELD_CHANGE = "form.field", _("Form question changed")
    REPORT_CREATE = "report.create", _("Report saved")
    REPORT_UPDATE = "report.update", _("Report changed")
    REPORT_DELETE = "report.delete", _("Report deleted")
    REPORT_SHARE = "report.share", _("Report sharing changed")
    SCHEDULE_CREATE = "schedule.create", _("Report scheduled")
    SCHEDULE_UPDATE = "schedule.update", _("Report schedule changed")
    SCHEDULE_DELETE = "schedule.delete", _("Report schedule deleted")
    SCHEDULE_FAILED = "schedule.failed", _("Scheduled report failed")
    BACKUP_REQUEST = "backup.request", _("Backup requested")
    BACKUP_CREATE = "backup.create", _("Backup made")
    BACKUP_FAILED = "backup.failed", _("Backup failed")
    BACKUP_PRUNE = "backup.prune", _("Old backups deleted")
    BACKUP_DRILL = "backup.drill", _("Restore drill")
    RESTORE = "restore", _("Database restored from a backup")
    CUSTOMER_ERASE = "customer.erase", _("Customer erased")
    RETENTION_APPLY = "retention.apply", _("Retention rule applied")
    HISTORY_ARCHIVE = "history.archive", _("Old history archived")


# Actions that make up a customer's change history.
CUSTOMER_HISTORY_ACTIONS = (
    Action.CUSTOMER_CREATE,
    Action.CUSTOMER_UPDATE,
    Action.CUSTOMER_DELETE,
    Action.CUSTOMER_MERGE,
    Action.CUSTOMER_UNMERGE,
    Action.CUSTOMER_ARCHIVE,
    Action.CUSTOMER_RESTORE,
    Action.CHANGES_REJECTED,
    Action.BULK_ACTION,
    Action.CUSTOMER_ERASE,
)

# Entries about a customer whose details are kept in clear: they hold no personal data, and
# must stay readable after the customer's details are shredded (accounts.audit_sealing).
UNSEALED_ACTIONS = (Action.CUSTOMER_ERASE,)


class OpeningIterable(models.query.ModelIterable):
    """Entries as model instances, the sealed details of those about customers opened."""

    batch_size = 500

    def __iter__(self):
        from accounts import audit_sealing

        batch = []
        for entry in super().__iter__():
            batch.append(entry)
            if len(batch) >= self.batch_size:
                audit_sealing.open_entries(batch, self.queryset.db)
                yield from batch
                batch = []
        audit_sealing.open_entries(batch, self.queryset.db)
        yield from batch


class AuditEntryQuerySet(models.QuerySet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # values() and values_list() set their own: verification reads what is stored.
        self._iterable_class = OpeningIterable

    def for_customer(self, customer):
        return self.filter(customer_id=getattr(customer, "pk", customer))

    def head(self):
        """(seq, hash) of the last entry, or (0, GENESIS_HASH) for an empty trail."""
        last = self.order_by("-seq").values_list("seq", "hash").first()
        return last or (0, GENESIS_HASH)

    def update(self, **kwargs):
        raise TypeError("Audit entries cannot be changed.")

    def delete(self):
        raise TypeError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    # The sequence number is assigned under a lock (see `record`), so it has no gaps: a missing
    # number is a deleted entry.
    seq = models.BigIntegerField(_("number"), primary_key=True, editable=False)
    created_at = models.DateTimeField(_("time"), editable=False)
    action = models.CharField(_("action"), max_length=40, choices=Action)
    # No database constraint: deleting a user must neither cascade to the trail nor set these
    # to NULL, which would be an UPDATE the trigger refuses. The name at the time is kept.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_username = models.CharField(_("username"), max_length=150, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    # Customers can be deleted and merged away while their history stays: no foreign key.
    customer_id = models.UUIDField(_("customer"), null=True, blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    hash = models.CharField(_("hash"), max_length=64, editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        # One index per search filter, each ending in seq so that a filtered page is a walk of
        # one index in keyset order.
        indexes = [
            models.Index(fields=["action", "seq"], name="audit_action_seq"),
            models.Index(fields=["actor_username", "seq"], name="audit_actor_seq"),
            models.Index(fields=["customer_id", "seq"], name="audit_customer_seq"),
            models.Index(fields=["created_at"], name="audit_created_at"),
        ]
        # Verification walks from entry 1 upwards: an entry numbered below it would be skipped.
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seq_positive")
        ]

    def __str__(self):
        return f"#{self.seq} {self.get_action_display()}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Audit entries cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit entries cannot be deleted.")

    def canonical_content(self):
        values = {name: getattr(self, name) for name in CHAINED_FIELDS}
        # An opened entry was hashed over its sealed columns, as stored.
        values.update(getattr(self, "stored_columns", {}))
        return canonical_content(values)

    def compute_hash(self):
        return chain_hash(self.prev_hash, self.canonical_content())

    def details_json(self):
        return json.dumps(self.data, ensure_ascii=False, sort_keys=True) if self.data else ""

    def change_rows(self):
        """[(field label, old, new)] of a change entry, sensitive values in masked form."""
        labels = {**CHANGE_LABELS, **_field_labels(self.object_type)}
        rows = []
        for field, pair in sorted((self.data.get("changes") or {}).items()):
            old, new = (pair + [None, None])[:2] if isinstance(pair, list) else (None, pair)
            rows.append((labels.get(field, field), _shown(old), _shown(new)))
        return rows


# Changes recorded under names that are not a field of the changed model.
CHANGE_LABELS = {
    "role": _("role"),
    "teams": _("teams"),
    "active": _("active"),
    "members": _("members"),
    "permissions": _("permissions"),
}


@functools.cache
def _field_labels(object_type):
    """{field name: translated label} of the model named "app_label.model", if there is one."""
    from django.apps import apps

    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return {}
    return {f.name: f.verbose_name for f in model._meta.get_fields() if hasattr(f, "verbose_name")}


def _shown(value):
    if isinstance(value, dict) and "masked" in value:
        return value["masked"]
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _utc_iso(moment):
    return moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")


# The columns an entry's hash covers, in the order verification reads them.
CHAINED_FIELDS = (
    "seq",
    "created_at",
    "action",
    "actor_id",
    "actor_username",
    "ip",
    "object_type",
    "object_id",
    "object_repr",
    "customer_id",
    "data",
    "prev_hash",
)


def canonical_content(values):
    """An entry's content as canonical JSON (sorted keys, no spaces): what its hash covers.

    The sequence number is part of it, so moving an entry to another place breaks its hash.
    """
    values = dict(values)
    values["created_at"] = _utc_iso(values["created_at"])
    values["customer_id"] = str(values["customer_id"]) if values["customer_id"] else None
    return canonical_json(values)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash, content):
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def jsonable(value):
    """`value` in the JSON types that come back unchanged from a jsonb column.

    The hash is computed before the entry is stored and checked on what is read back, so the
    two must serialise identically: floats (which jsonb may re-spell) become strings, and so do
    dates, decimals, UUIDs and anything else; NUL characters, which jsonb rejects, are dropped.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {jsonable(str(key)): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(item) for item in value]
        return sorted(items, key=canonical_json) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return _utc_iso(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value.pk)
    return jsonable(str(value))


# The request being served, so that code far from the view (model methods, signal receivers)
# can record who did something and from where without being handed the request.
_current_request = contextvars.ContextVar("cims_audit_request", default=None)


class AuditContextMiddleware:
    """Keep the current request where `audit.record` finds it. Place after authentication."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def current_request():
    return _current_request.get()


def client_ip(request):
    """The client's address: REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies in front of us,
    the address the outermost of them saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so only the
    last TRUSTED_PROXY_COUNT entries were written by proxies we trust; anything to their left is
    whatever the client sent and is ignored.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            # Fewer entries than proxies: the request came in past the outer ones, and every
            # entry was still written by a proxy we trust.
            remote = hops[-proxies] if len(hops) >= proxies else hops[0]
    try:
        address = ipaddress.ip_address(remote) if remote else None
    except ValueError:
        return None
    # An IPv4 client reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address) if address else None


def record(action, *, target=None, customer=None, data=None, actor=None, request=None, using=None):
    """Append an entry to the audit trail, inside the caller's transaction.

    `target` is the object acted on (any model instance); `customer` (an instance or id) puts
    the entry in that customer's history and is taken from `target` when it is a Customer.
    `actor` and the IP address default to those of the current request.

    Appends are serialised by a transaction-scoped advisory lock, held until the caller's
    transaction ends: the number and previous hash read under it stay the chain's head until
    this entry is committed or rolled back, so concurrent writers can neither fork the chain
    nor leave a gap. Keep transactions that record short. `using` names another database's
    trail (a database just restored).
    """
    using = using or DEFAULT_DB_ALIAS
    entry = _unchained_entry(action, target, customer, data, actor, request or current_request())
    with transaction.atomic(using=using):
        opened = _seal(entry, using)
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        seq, prev_hash = AuditEntry.objects.using(using).head()
        entry.seq = seq + 1
        entry.prev_hash = prev_hash
        # Taken under the lock, so that time never runs backwards along the chain.
        entry.created_at = timezone.now()
        entry.hash = entry.compute_hash()
        entry.save(using=using)
        _unseal(entry, opened)
    return entry


def record_many(action, targets, *, data=None, actor=None, request=None):
    """Append one entry of `action` for each of `targets` (model instances) in one statement,
    as `record` would one by one: for jobs that act on thousands of records at once.

    `data` is a callable(target) -> the entry's details, or None.
    """
    request = request or current_request()
    entries = [
        _unchained_entry(action, target, None, data(target) if data else None, actor, request)
        for target in targets
    ]
    if not entries:
        return []
    with transaction.atomic():
        from accounts import audit_sealing

        # The customers' keys in one go: a batch of archived customers is hundreds of entries.
        keys = audit_sealing.subject_keys(
            entry.customer_id
            for entry in entries
            if entry.customer_id is not None and entry.action not in UNSEALED_ACTIONS
        )
        opened = [_seal(entry, DEFAULT_DB_ALIAS, keys.get(entry.customer_id)) for entry in entries]
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        seq, prev_hash = AuditEntry.objects.head()
        now = timezone.now()
        for entry in entries:
            seq += 1
            entry.seq, entry.prev_hash, entry.created_at = seq, prev_hash, now
            entry.hash = prev_hash = entry.compute_hash()
        AuditEntry.objects.bulk_create(entries)
        for entry, values in zip(entries, opened, strict=True):
            _unseal(entry, values)
    return entries


def _seal(entry, using, key=None):
    """Seal an entry about a customer under the customer's key (accounts.audit_sealing), so
    erasing the customer can shred its details; returns the values in clear, or None."""
    if entry.customer_id is None or entry.action in UNSEALED_ACTIONS:
        return None
    from accounts import audit_sealing

    # Sealed before the chain's lock is taken: making the customer's key may wait for another
    # transaction making it.
    opened = audit_sealing.seal(entry, using, key)
    entry.stored_columns = {name: getattr(entry, name) for name in opened}
    return opened


def _unseal(entry, opened):
    """Give the caller back the entry in clear, as it was before sealing."""
    for name, value in (opened or {}).items():
        setattr(entry, name, value)


def _unchained_entry(action, target, customer, data, actor, request):
    """An entry with everything but its place in the chain (seq, time, hashes)."""
    action = Action(action)
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    entry = AuditEntry(
        action=action.value,
        actor_id=getattr(actor, "pk", None),
        actor_username=(actor.get_username() if actor is not None else "")[:150],
        ip=client_ip(request) if request is not None else None,
        data=jsonable(data or {}),
    )
    if target is not None:
        entry.object_type = target._meta.label_lower
        entry.object_id = str(target.pk)[:64]
        entry.object_repr = str(target)[:200]
        if customer is None and target._meta.label_lower == "customers.customer":
            customer = target
    if customer is not None:
        customer_id = getattr(customer, "pk", customer)
        entry.customer_id = (
            customer_id if isinstance(customer_id, uuid.UUID) else uuid.UUID(str(customer_id))
        )
    return entry


def sensitive_digest(field, value):
    """A keyed hash of a sensitive value: equal values have equal digests, but the value cannot
    be recovered or guessed by hashing candidates without the key."""
    key = (getattr(settings, "AUDIT_HASH_KEY", "") or settings.SECRET_KEY).encode()
    message = f"{field}:{jsonable(value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]


def changes(old, new):
    """{field: [old, new]} for the fields whose value differs between two dicts.

    Sensitive fields (customers.masking.SENSITIVE_FIELDS) are stored as {"masked", "hash"}, so
    an auditor sees what kind of value it was and whether two values were equal, not the value.
    """
    from customers.masking import SENSITIVE_FIELDS, mask

    result = {}
    for field in list(old) + [name for name in new if name not in old]:
        before, after = old.get(field), new.get(field)
        if before == after:
            continue
        if field in SENSITIVE_FIELDS:
            before, after = _concealed(field, before, mask), _concealed(field, after, mask)
        result[field] = [jsonable(before), jsonable(after)]
    return result


def _concealed(field, value, mask):
    if value in (None, ""):
        return value
    return {"masked": mask(field, value), "hash": sensitive_digest(field, value)}


def customer_history(customer, limit=50):
    """The latest changes to a customer, newest first, for templates/accounts/customer_history."""
    return list(
        AuditEntry.objects.for_customer(customer)
        .filter(action__in=CUSTOMER_HISTORY_ACTIONS)
        .order_by("-seq")[:limit]
    )


# Verification ------------------------------------------------------------------------------


class ChainBroken(Exception):
    """The trail is not what was written: `seq` names the first entry found wrong."""

    def __init__(self, seq, message):
        super().__init__(message)
        self.seq = seq
        self.message = message


def walk_chain(*, after_seq=0, prev_hash=GENESIS_HASH, batch_size=10_000, using=None):
    """Yield (seq, hash) of every entry after `after_seq` in order, each checked against the one
    before it; raise ChainBroken at the first that is missing, out of place or changed.

    Reads the table in keyset batches, so memory stays flat over millions of entries.
    """
    expected, last = after_seq + 1, after_seq
    columns = (*CHAINED_FIELDS, "hash")
    while True:
        rows = list(
            AuditEntry.objects.using(using or DEFAULT_DB_ALIAS)
            .filter(seq__gt=last)
            .order_by("seq")
            .values_list(*columns)[:batch_size]
        )
        for row in rows:
            values = dict(zip(CHAINED_FIELDS, row, strict=False))
            seq, stored_hash = values["seq"], row[-1]
            if seq != expected:
                raise ChainBroken(
                    expected,
                    _("Entry %(seq)s is missing (deleted): the trail goes on with entry %(next)s.")
                    % {"seq": expected, "next": seq},
                )
            if values["prev_hash"] != prev_hash:
                raise ChainBroken(
                    seq,
                    _(
                        "Entry %(seq)s does not follow entry %(previous)s: entries were "
                        "reordered or removed, or entry %(previous)s was changed and re-hashed."
                    )
                    % {"seq": seq, "previous": seq - 1},
                )
            if chain_hash(prev_hash, canonical_content(values)) != stored_hash:
                raise ChainBroken(
                    seq, _("Entry %(seq)s was changed after it was written.") % {"seq": seq}
                )
            yield seq, stored_hash
            prev_hash, expected = stored_hash, expected + 1
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


@dataclass
class Verification:
    entries: int
    head_seq: int
    head_hash: str
    checkpoints: int


def verify_trail(*, batch_size=10_000, with_checkpoints=True, using=None):
    """Check the whole chain and, with `with_checkpoints`, that every signed checkpoint is
    genuine and still matches the table (which a chain rewritten from scratch would not).

    Returns a Verification; raises ChainBroken naming the first wrong entry. `using` checks
    another database's trail (a database just restored).
    """
    checkpoints = {cp.seq: cp for cp in read_checkpoints()} if with_checkpoints else {}
    last_good = None
    seq, head_hash, count = 0, GENESIS_HASH, 0
    for seq, head_hash in walk_chain(batch_size=batch_size, using=using):
        count += 1
        checkpoint = checkpoints.get(seq)
        if checkpoint is None:
            continue
        if checkpoint.hash != head_hash:
            raise ChainBroken(
                seq,
                _(
                    "Entry %(seq)s no longer has the hash signed in %(file)s: the trail was "
                    "rewritten after entry %(good)s (the last checkpoint that matches)."
                )
                % {"seq": seq, "file": checkpoint.path.name, "good": last_good or 0},
            )
        last_good = seq
    beyond = [cp for cp in checkpoints.values() if cp.seq > seq]
    if beyond:
        missing = min(beyond, key=lambda cp: cp.seq)
        raise ChainBroken(
            seq + 1,
            _(
                "The trail ends at entry %(head)s, but %(file)s signed entry %(seq)s: "
                "entries at the end were deleted."
            )
            % {"head": seq, "file": missing.path.name, "seq": missing.seq},
        )
    return Verification(
        entries=count, head_seq=seq, head_hash=head_hash, checkpoints=len(checkpoints)
    )


# Signed checkpoints ------------------------------------------------------------------------

# Signatures cover this prefix too, so a checkpoint signature can never be passed off as a
# signature of anything else made with the same key.
CHECKPOINT_DOMAIN = b"cims-audit-checkpoint-v1\n"


@dataclass
class Checkpoint:
    seq: int
    hash: str
    path: Path


def checkpoint_dir():
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def signing_key():
    """The Ed25519 private key checkpoints are signed with.

    Development (AUDIT_SIGNING_KEY_AUTOCREATE, on with DEBUG) creates one on first use; in
    production a missing key is a configuration error rather than a trail nobody can vouch for.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if not settings.AUDIT_SIGNING_KEY_FILE:
        raise ImproperlyConfigured(
            "AUDIT_SIGNING_KEY_FILE is not set: audit checkpoints cannot be signed."
        )
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not path.exists():
        if not settings.AUDIT_SIGNING_KEY_AUTOCREATE:
            raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path} does not exist.")
        _create_signing_key(path)
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path} is not an Ed25519 key.")
    return key


def _create_signing_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # Exclusive creation: of two processes starting at once, one key wins and both use it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as file:
        file.write(pem)


def verify_keys():
    """{key id: Ed25519 public key} that checkpoints may be signed with.

    AUDIT_PUBLIC_KEY_FILE (one or more PEM public keys, old ones kept after a rotation) lets a
    machine without the private key verify; without it, the signing key's own public half is used.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not settings.AUDIT_PUBLIC_KEY_FILE:
        public = signing_key().public_key()
        return {key_id(public): public}
    keys = {}
    text = Path(settings.AUDIT_PUBLIC_KEY_FILE).read_text()
    end = "-----END PUBLIC KEY-----"
    for block in text.split(end)[:-1]:
        public = load_pem_public_key((block.strip() + "\n" + end + "\n").encode())
        if not isinstance(public, Ed25519PublicKey):
            raise ImproperlyConfigured("AUDIT_PUBLIC_KEY_FILE holds a key that is not Ed25519.")
        keys[key_id(public)] = public
    return keys


def key_id(public_key):
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_payload(payload):
    return CHECKPOINT_DOMAIN + canonical_json(payload).encode()


def read_checkpoints():
    """Every checkpoint in the directory, each with its signature checked, in order of seq.

    Raises ChainBroken for a file that cannot be read or whose signature is not valid.
    """
    from cryptography.exceptions import InvalidSignature

    paths = sorted(checkpoint_dir().glob("checkpoint-*.json"))
    if not paths:
        return []
    keys = verify_keys()
    checkpoints = []
    for path in paths:
        try:
            document = json.loads(path.read_text())
            signature = base64.b64decode(document.pop("signature"), validate=True)
            seq, hash_ = int(document["seq"]), str(document["hash"])
            keys[document["key_id"]].verify(signature, _signed_payload(document))
        except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature):
            raise ChainBroken(
                _seq_from_name(path),
                _("Checkpoint %(file)s is not genuine: its signature does not verify.")
                % {"file": path.name},
            ) from None
        checkpoints.append(Checkpoint(seq=seq, hash=hash_, path=path))
    return sorted(checkpoints, key=lambda cp: cp.seq)


def _seq_from_name(path):
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits else 0


def write_checkpoint(*, verified=None, batch_size=10_000):
    """Sign the chain's head into a new checkpoint file and return its path (None while the
    trail is empty).

    The entries since the latest checkpoint (or since `verified`, the Verification of a full
    check just made) are verified first, so a checkpoint never vouches for a chain already
    tampered with. Writing the same head twice changes nothing.
    """
    key = signing_key()
    checkpoints = read_checkpoints()
    after_seq, prev_hash = 0, GENESIS_HASH
    if verified is not None:
        after_seq, prev_hash = verified.head_seq, verified.head_hash
    elif checkpoints:
        latest = checkpoints[-1]
        entry = AuditEntry.objects.filter(seq=latest.seq).first()
        if entry is None or entry.hash != latest.hash or entry.compute_hash() != entry.hash:
            raise ChainBroken(
                latest.seq,
                _("Entry %(seq)s no longer matches %(file)s.")
                % {"seq": latest.seq, "file": latest.path.name},
            )
        after_seq, prev_hash = latest.seq, latest.hash
    walked = deque(
        walk_chain(after_seq=after_seq, prev_hash=prev_hash, batch_size=batch_size), maxlen=1
    )
    head_seq, head_hash = walked[0] if walked else (after_seq, prev_hash)
    if head_seq == 0:
        return None
    path = checkpoint_dir() / f"checkpoint-{head_seq:012d}.json"
    if path.exists():
        return path
    entry_time = AuditEntry.objects.values_list("created_at", flat=True).get(seq=head_seq)
    payload = {
        "seq": head_seq,
        "hash": head_hash,
        "entry_time": _utc_iso(entry_time),
        "signed_at": _utc_iso(timezone.now()),
        "key_id": key_id(key.public_key()),
    }
    signature = base64.b64encode(key.sign(_signed_payload(payload))).decode()
    _write_atomically(path, json.dumps({**payload, "signature": signature}, indent=2) + "\n")
    return path


def _write_atomically(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def check_signing_key(app_configs=None, **kwargs):
    """Deploy check: production must be able to sign checkpoints (manage.py check --deploy)."""
    from django.core.checks import Error

    if settings.AUDIT_SIGNING_KEY_AUTOCREATE:
        return []
    path = settings.AUDIT_SIGNING_KEY_FILE
    if path and Path(path).is_file():
        return []
    return [
        Error(
            "No audit signing key: set AUDIT_SIGNING_KEY_FILE to an Ed25519 private key (PEM).",
            hint="openssl genpkey -algorithm ed25519 -out audit-signing-key.pem",
            id="accounts.E101",
        )
    ]
