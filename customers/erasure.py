"""Erasing a customer: their personal data removed everywhere, their figures kept.

`erase_customer` runs STEPS, one per place that holds something of the customer, in one
transaction on one database (any alias: a restored copy too). The customer row, live or in
the archive (customers.archiving), stays as a tombstone named ERASED_NAME with what the figures
need (creation time, source, status, province, city, tags, owner and team), and so do their
orders (amount, time, channel, currency) and the kind and time of their interactions: the
dashboard, revenue and analytics add up as before.

Each erasure is recorded twice, without anything about the person: as an Erasure row, and as a
line of the ledger file outside the database (ERASURE_LEDGER_PATH). `reapply_erasures` runs the
steps again for every ledger entry, so that restoring an older backup never brings an erased
customer back; it is connected to accounts.signals.database_restored.

To cover a new table, write a function `(ctx) -> rows changed` and add a Step to STEPS.
"""

import datetime
import fcntl
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.signals import database_restored
from customers import search
from customers.erasure_models import Erasure, ErasureReason

# What an erased customer is called. Stored as it is (not translated): it is the row's name.
ERASED_NAME = "Erased customer"


@dataclass
class Context:
    customer_id: uuid.UUID
    using: str
    now: datetime.datetime
    actor_id: int | None = None
    # Stored files to delete once the erasure is committed: (storage, name).
    files: list = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    name: str
    run: object  # (Context) -> number of rows changed


# --- The steps ------------------------------------------------------------------------------


def _customer(ctx):
    """The tombstone, live or archived: every personal column emptied, the columns figures count
    by kept. An archived customer keeps only the snapshots that hold no personal data."""
    from customers.models import ArchivedCustomer, Customer

    cleared = {
        "display_name": ERASED_NAME,
        "family_name": "",
        "given_name": "",
        "gender": "",
        "birthday": None,
        "birth_year": None,
        "email": None,
        "phone": None,
        "street": None,
        "email_index": None,
        "phone_index": None,
        "phone_last4_index": None,
        "company": "",
        "job_title": "",
        "district": "",
        "postcode": "",
        "notes": "",
        "attributes": {},
        "external_id": "",
        "updated_at": ctx.now,
        "updated_by_id": ctx.actor_id,
        # An edit form opened before the erasure is refused rather than writing data back.
        "version": models.F("version") + 1,
        **search.search_fields(display_name=ERASED_NAME),
    }
    changed = Customer.objects.using(ctx.using).filter(pk=ctx.customer_id).update(**cleared)
    changed += (
        ArchivedCustomer.objects.using(ctx.using)
        .filter(pk=ctx.customer_id)
        # Live, the consents' triggers empty consented_purposes when the consents go.
        .update(consented_purposes=[], **cleared)
    )
    return changed


# Snapshots an archived tombstone keeps: whom it is shared with and its analytics figures, as
# a live tombstone keeps its shares and metrics row. Any other snapshot (consents, proposed
# changes, duplicate decisions, links from submissions, and any added later) is dropped.
KEPT_SNAPSHOTS = ("user_shares", "team_shares", "metrics")


def _archived_snapshots(ctx):
    """An archived customer's related rows are snapshots in `related`, and the submissions and
    others' proposed changes that pointed at them are unlinked rows found by the ids kept there:
    they lose what the live steps take from the same tables."""
    from customers.models import ArchivedCustomer
    from intake.models import ProposedChange, Submission, VerificationCode

    archived = ArchivedCustomer.objects.using(ctx.using).filter(pk=ctx.customer_id)
    related = archived.values_list("related", flat=True).first()
    if related is None:
        return 0
    # Only rows still unlinked: one linked to someone else since is theirs now.
    submissions = Submission.objects.using(ctx.using).filter(
        pk__in=related.get("submissions") or [], customer__isnull=True
    )
    ids = list(submissions.values_list("pk", flat=True))
    VerificationCode.objects.using(ctx.using).filter(submission_id__in=ids).delete()
    changed = (
        Submission.objects.using(ctx.using)
        .filter(pk__in=ids)
        .update(private_answers=None, ip_address=None)
    )
    deleted, _counts = (
        ProposedChange.objects.using(ctx.using)
        .filter(pk__in=related.get("conflicting_changes") or [], conflicting_customer__isnull=True)
        .delete()
    )
    kept = {key: related[key] for key in KEPT_SNAPSHOTS if key in related}
    if kept != related:
        changed += archived.update(related=kept)
    return changed + deleted


def _interactions(ctx):
    from customers.models import ArchivedInteraction, Interaction

    changed = 0
    for model in (Interaction, ArchivedInteraction):
        changed += (
            model.objects.using(ctx.using)
            .filter(customer_id=ctx.customer_id)
            .update(summary="", details={})
        )
    return changed


def _orders(ctx):
    """Amounts, times, channels, currencies and lines stay; the order number, which the shop
    that issued it can tie to the person, becomes the order's own id."""
    from customers.models import ArchivedOrder, Order

    changed = 0
    for model in (Order, ArchivedOrder):
        changed += (
            model.objects.using(ctx.using)
            .filter(customer_id=ctx.customer_id)
            .update(external_id=Cast("id", models.CharField()))
        )
    return changed


def _consents(ctx):
    from customers.models import Consent

    deleted, _counts = Consent.objects.using(ctx.using).filter(customer_id=ctx.customer_id).delete()
    return deleted


def _duplicates(ctx):
    from customers.models import DuplicateCandidate, DuplicateDismissal

    changed = 0
    for model in (DuplicateCandidate, DuplicateDismissal):
        deleted, _counts = (
            model.objects.using(ctx.using)
            .filter(Q(customer_a_id=ctx.customer_id) | Q(customer_b_id=ctx.customer_id))
            .delete()
        )
        changed += deleted
    return changed


def _merges(ctx):
    """Snapshots that could bring the customer's rows back are cleared (the merge can no longer
    be undone); a customer merged away loses their name in the record of the merge."""
    from customers.models import Merge

    merges = Merge.objects.using(ctx.using)
    cleared = {
        "choices": {},
        "survivor_before": {},
        "survivor_after": {},
        "merged_row": {},
        "moved": {},
        "removed": {},
        "candidate": None,
        "snapshots_cleared_at": ctx.now,
    }
    changed = merges.filter(merged_id=ctx.customer_id).update(merged_name=ERASED_NAME, **cleared)
    changed += merges.filter(survivor_id=ctx.customer_id).update(**cleared)
    return changed


def _imports(ctx):
    """The rows kept to revert an import, and the uploaded file and preview of every import
    that created or changed the customer (the file holds their row)."""
    from customers.models import CustomerImport, ImportedCustomer

    imported = ImportedCustomer.objects.using(ctx.using).filter(customer_id=ctx.customer_id)
    import_ids = set(imported.values_list("customer_import_id", flat=True))
    deleted, _counts = imported.delete()
    jobs = CustomerImport.objects.using(ctx.using).filter(pk__in=import_ids)
    for job in jobs:
        ctx.files.extend((f.storage, f.name) for f in (job.file, job.report) if f)
    jobs.update(file="", report="", sample=[], preview={})
    return deleted + len(import_ids)


def _submissions(ctx):
    """Free-text and contact answers and the sender's address go; structured answers (choices,
    ratings) stay for the survey's results, no longer tied to anyone."""
    from intake.models import ProposedChange, Submission, VerificationCode

    submissions = Submission.objects.using(ctx.using).filter(customer_id=ctx.customer_id)
    ids = list(submissions.values_list("pk", flat=True))
    VerificationCode.objects.using(ctx.using).filter(submission_id__in=ids).delete()
    # Values waiting for review: the customer's own, and submitted values found to be theirs.
    ProposedChange.objects.using(ctx.using).filter(
        Q(customer_id=ctx.customer_id) | Q(conflicting_customer_id=ctx.customer_id)
    ).delete()
    return (
        Submission.objects.using(ctx.using)
        .filter(pk__in=ids)
        .update(private_answers=None, ip_address=None, customer=None)
    )


def _admin_log(ctx):
    """Django's admin history names the objects it changed: the customer's name, as it was."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from customers.models import Customer

    content_type = ContentType.objects.db_manager(ctx.using).get_for_model(Customer)
    return (
        LogEntry.objects.using(ctx.using)
        .filter(content_type=content_type, object_id=str(ctx.customer_id))
        .update(object_repr=ERASED_NAME, change_message="")
    )


def _audit_details(ctx):
    from accounts import audit_sealing

    return audit_sealing.forget([ctx.customer_id], ctx.using)


def _generated_files(ctx):
    """Customer lists and reports made before the erasure may list the customer; which ones
    cannot be told without reading them, so all are deleted (they expire within days anyway).
    Analyses hold only counts and sums by dimension, and stay."""
    from reports.models import GeneratedFile

    old = (
        GeneratedFile.objects.using(ctx.using)
        .filter(created_at__lte=ctx.now)
        .exclude(spec__kind="analysis")
    )
    for generated in old.exclude(file=""):
        ctx.files.append((generated.file.storage, generated.file.name))
    deleted, _counts = old.delete()
    return deleted


STEPS = (
    Step("customer", _customer),
    Step("archived_snapshots", _archived_snapshots),
    Step("interactions", _interactions),
    Step("orders", _orders),
    Step("consents", _consents),
    Step("duplicates", _duplicates),
    Step("merges", _merges),
    Step("imports", _imports),
    Step("submissions", _submissions),
    Step("admin_log", _admin_log),
    Step("audit_details", _audit_details),
    Step("generated_files", _generated_files),
)


# --- Erasing --------------------------------------------------------------------------------


def erase_customer(customer_id, *, reason, user=None, rule="", using="default"):
    """Erase the customer in one transaction, record it in the ledger and the audit trail.

    Returns the Erasure. Erasing an erased customer runs the steps again and records nothing.
    """
    customer_id = uuid.UUID(str(customer_id))
    reason = ErasureReason(reason)

    with transaction.atomic(using=using):
        _lock_customer(customer_id, using)
        erasure = Erasure.objects.using(using).filter(customer_id=customer_id).first()
        if erasure is not None:
            _run_steps(customer_id, using=using, actor_id=getattr(user, "pk", None))
            return erasure
        counts = _run_steps(customer_id, using=using, actor_id=getattr(user, "pk", None))
        erasure = Erasure.objects.using(using).create(
            customer_id=customer_id,
            erased_by_id=getattr(user, "pk", None),
            erased_by_username=user.get_username() if user is not None else "",
            reason=reason,
            rule=rule,
        )
        if using == "default":
            # Ids and counts only: the entry must not bring back what was just erased.
            audit.record(
                audit.Action.CUSTOMER_ERASE,
                customer=customer_id,
                actor=user,
                data={"reason": reason.value, "rule": rule, "rows": counts},
            )
        # Last, so that a failed erasure leaves no line; a commit failing after it leaves a
        # line for a customer not yet erased, whom the next re-application erases.
        Ledger().append(erasure)
    return erasure


def _lock_customer(customer_id, using):
    """Lock the customer's row, live or archived, so that an edit, an archiving or restore, or a
    second erasure waits for this one. Customer.DoesNotExist when it is in neither table."""
    from customers.models import ArchivedCustomer, Customer

    # Live again last: a restore that committed while this waited for the archived row has
    # moved the customer back meanwhile (and an archiving the other way round is seen by the
    # second look).
    for model in (Customer, ArchivedCustomer, Customer):
        if model.objects.using(using).select_for_update().filter(pk=customer_id).values("pk"):
            return model
    raise Customer.DoesNotExist(f"No customer {customer_id}, live or archived.")


def _run_steps(customer_id, *, using, actor_id):
    ctx = Context(customer_id=customer_id, using=using, now=timezone.now(), actor_id=actor_id)
    counts = {step.name: step.run(ctx) for step in STEPS}
    files = list(ctx.files)
    transaction.on_commit(lambda: _delete_files(files), using=using)
    return counts


def _delete_files(files):
    for storage, name in files:
        storage.delete(name)


# --- The ledger -----------------------------------------------------------------------------


def _last_line(file, block=4096):
    """The last line of a text file opened for reading, read from its end: appending to a
    long ledger must not read all of it."""
    end = file.seek(0, os.SEEK_END)
    position, tail = end, b""
    raw = file.buffer
    while position > 0 and tail.rstrip(b"\n").count(b"\n") == 0:
        position = max(0, position - block)
        raw.seek(position)
        tail = raw.read(end - position)
    lines = tail.decode("utf-8").splitlines()
    return lines[-1] if lines else ""


class LedgerTampered(Exception):
    """A line of the ledger is not what was written: changed, removed or out of place."""


class Ledger:
    """The erasures in an append-only JSON-lines file, each line chained to the one before
    and authenticated with an HMAC, so that an edited, removed or reordered line is noticed.

    A line: {"customer_id", "erased_at", "erased_by_id", "erased_by_username", "reason",
    "rule", "prev", "mac"}: `prev` is the SHA-256 of the previous line as written.
    """

    GENESIS = "0" * 64

    def __init__(self, path=None):
        self.path = Path(path or settings.ERASURE_LEDGER_PATH)

    @staticmethod
    def _key():
        secret = settings.ERASURE_LEDGER_KEY or settings.SECRET_KEY
        return hmac.digest(secret.encode(), b"cims erasure ledger", "sha256")

    def _mac(self, record):
        message = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def append(self, erasure):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as file:
            # One writer at a time, across processes: the previous line must be the last one.
            fcntl.flock(file, fcntl.LOCK_EX)
            last = _last_line(file)
            record = {
                "customer_id": str(erasure.customer_id),
                "erased_at": erasure.erased_at.astimezone(datetime.UTC).isoformat(),
                "erased_by_id": erasure.erased_by_id,
                "erased_by_username": erasure.erased_by_username,
                "reason": erasure.reason,
                "rule": erasure.rule,
                "prev": _line_hash(last) if last else self.GENESIS,
            }
            record["mac"] = self._mac(record)
            file.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def entries(self):
        """Every line, checked; LedgerTampered names the first wrong one."""
        if not self.path.exists():
            return []
        records, prev = [], self.GENESIS
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                mac = record.pop("mac")
            except (ValueError, KeyError, AttributeError):
                raise LedgerTampered(
                    _("Line %(number)s of %(path)s is not a ledger line.")
                    % {"number": number, "path": self.path}
                ) from None
            if not hmac.compare_digest(str(mac), self._mac(record)):
                raise LedgerTampered(
                    _("Line %(number)s of %(path)s was changed.")
                    % {"number": number, "path": self.path}
                )
            if record.get("prev") != prev:
                raise LedgerTampered(
                    _(
                        "Line %(number)s of %(path)s does not follow line %(previous)s: lines "
                        "were removed or reordered."
                    )
                    % {"number": number, "path": self.path, "previous": number - 1}
                )
            records.append(record)
            prev = _line_hash(line)
        return records


def _line_hash(line):
    return hashlib.sha256(line.encode()).hexdigest()


def reapply_erasures(using="default", ledger=None):
    """Erase again, in database `using`, every customer the ledger or its Erasure table names.

    Returns the ids of customers that were found with their data back (now erased again, and
    audited as such). Raises LedgerTampered, changing nothing, if the ledger was tampered with.
    Ledger entries missing from the table are added to it, and table rows missing from the
    ledger are appended to it, so that both hold every erasure afterwards.
    """
    ledger = ledger or Ledger()
    logged = {record["customer_id"]: record for record in ledger.entries()}
    stored = {str(e.customer_id): e for e in Erasure.objects.using(using)}
    for customer_id, erasure in stored.items():
        if customer_id not in logged:
            ledger.append(erasure)
    restored = []
    for customer_id, record in logged.items():
        with transaction.atomic(using=using):
            if customer_id not in stored:
                Erasure.objects.using(using).create(
                    customer_id=customer_id,
                    erased_at=datetime.datetime.fromisoformat(record["erased_at"]),
                    erased_by_id=record["erased_by_id"],
                    erased_by_username=record["erased_by_username"],
                    reason=record["reason"],
                    rule=record["rule"],
                )
            if _has_personal_data(customer_id, using):
                counts = _run_steps(uuid.UUID(customer_id), using=using, actor_id=None)
                restored.append(customer_id)
                if using == "default":
                    audit.record(
                        audit.Action.CUSTOMER_ERASE,
                        customer=customer_id,
                        data={"reason": record["reason"], "reapplied": True, "rows": counts},
                    )
    return restored


def _has_personal_data(customer_id, using):
    """Whether the customer's row, live or archived, or audit key is back (a restore of an
    older backup). A customer in neither table (deleted since) has nothing to erase again."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM customers_customer WHERE id = %s AND display_name <> %s)"
            " OR EXISTS (SELECT 1 FROM customers_archivedcustomer WHERE id = %s"
            " AND display_name <> %s)"
            " OR EXISTS (SELECT 1 FROM accounts_auditsubjectkey WHERE customer_id = %s)",
            [customer_id, ERASED_NAME, customer_id, ERASED_NAME, customer_id],
        )
        return cursor.fetchone()[0]


@receiver(database_restored, dispatch_uid="reapply_erasures_after_restore")
def reapply_after_restore(sender, using="default", **kwargs):
    reapply_erasures(using=using)
