"""Importing customers from files: validation, matching and writing, set-based and atomic.

One `Importer` run reads the file row by row (memory stays flat however long it is) and works
in batches of a few thousand rows:

1. Each row is read through the mapping: every cell by the reader of its field
   (customers.import_fields), problems recorded as (row, column, value, reason). The row is
   prepared as the customer it would create, in case it creates one (most rows of a file do):
   its UUIDv7 id, made here in Python because its encrypted values are bound to the row's
   primary key (cims.crypto), its search columns and blind indexes, and the line COPY takes.
2. The batch's email and phone blind indexes and external ids are looked up in one query. A row
   that matches a customer is skipped, updates it, or creates a new customer without the
   clashing values, as the import says.
3. The new customers' lines are copied (COPY) into the table at once; changes to existing
   customers are copied into a temporary table and applied with one UPDATE ... FROM, after
   their current rows are kept (ImportedCustomer.previous) so that the import can be reverted.

Steps 2 and 3 of one batch run while a thread reads and prepares the next batches (step 1):
Python's work and PostgreSQL's overlap. Reading uses no database.

Each row is compared with the customers as the rows above it left them: a row with the same
email as an earlier row of the file matches the customer that row created. A batch is cut short
where a row repeats a key of the batch, so this holds within a batch as well. A customer saved
by someone else between a batch's lookup and its COPY makes the COPY fail: the run then starts
again, inserting through ON CONFLICT DO NOTHING, so that such a row fails, not the import.

The whole run is one transaction, committed together with the import's counts and its audit
entry. A worker or database that dies midway leaves nothing of the import behind: the task is
delivered again (acks late) and starts over. A check ("dry run") is the same run rolled back,
so its counts and problems are exactly those the import will have, barring changes by others
in between.
"""

import contextlib
import csv
import gc
import io
import json
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import audit
from accounts.permissions import (
    assignable_owners,
    can_import,
    changeable_customers,
    team_ids,
)
from cims import crypto
from cims.ids import uuid7_int
from customers import search
from customers.import_fields import ENCRYPTED, CellError, field_label, reader
from customers.import_files import ImportFileError, iter_rows, read_header
from customers.models import (
    Customer,
    CustomerImport,
    CustomField,
    ImportedCustomer,
    Source,
    Tag,
)

logger = logging.getLogger(__name__)

TABLE = Customer._meta.db_table
BATCH_ROWS = 5000
FIRST_BATCH_ROWS = 500
# How often the GIN indexes' pending lists are merged while an import runs (see
# Importer._defer_search_indexes): 100,000 rows leave about 40 MB in each list. Fewer rows than
# CLEAN_AFTER_ROWS at the end are left to the next cleaning: inserts without an import leave
# as much (gin_pending_list_limit, 4 MB).
CLEAN_EVERY_ROWS = 100_000
CLEAN_AFTER_ROWS = 10_000
# The most names and companies whose search columns are kept while an import runs: a file
# repeats a few thousand names, and companies; more would be memory growing with the file.
CACHED_NAMES = 20_000
CACHED_COMPANIES = 50_000
PREVIEW_ROWS = 10
PROBLEM_SAMPLE = 200
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# The columns of a new customer, in the order rows are copied: first those that hold text
# from the file (escaped for COPY together), then those the importer writes itself.
TEXT_COLUMNS = (
    "display_name", "family_name", "given_name", "gender", "company", "job_title", "country",
    "province", "city", "district", "postcode", "source", "status", "tags", "notes",
    "attributes", "name_pinyin", "search_text", "search_keys", "external_id",
)  # fmt: skip
COLUMNS = (
    *TEXT_COLUMNS, "id", "birthday", "birth_year", "email", "phone", "street", "email_index",
    "phone_index", "phone_last4_index", "owner_id", "team_id", "created_at", "updated_at",
    "created_by_id", "updated_by_id", "version",
)  # fmt: skip
# The columns an import may change on an existing customer; NULL in a staged change keeps the
# customer's value.
CHANGED = (
    "display_name", "family_name", "given_name", "gender", "birthday", "birth_year", "email",
    "phone", "company", "job_title", "country", "province", "city", "district", "street",
    "postcode", "source", "status", "owner_id", "notes", "name_pinyin", "search_text",
    "search_keys", "email_index", "phone_index", "phone_last4_index", "external_id",
)  # fmt: skip
# The length of a blind index (HMAC-SHA256).
INDEX_BYTES = 32
# The keys a row is matched on, in the order they decide.
KEYS = ("external_id", "email", "phone")
MAX_TAGS = 20


def safe_cell(value):
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def progress_key(pk):
    return f"customer-import-progress:{pk}"


def pg_array(values):
    """A PostgreSQL array literal of strings (psycopg's list adapter is slower in bulk)."""
    if not values:
        return "{}"
    body = '","'.join(values)
    if "\\" in body or body.count('"') != 2 * (len(values) - 1):
        # A value holds a quotation mark or a backslash (search keys and most tags never do).
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


# COPY's text format: a tab between columns, \N for NULL, and these characters escaped.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"


def copy_bytes(value):
    """A bytea value as COPY's text format writes it, or NULL."""
    return COPY_NULL if value is None else "\\\\x" + value.hex()


def copy_texts(values):
    """Text values as COPY columns, joined by tabs and escaped where they need it."""
    line = "\t".join(values)
    if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != len(values) - 1:
        line = "\t".join(value.translate(COPY_ESCAPES) for value in values)
    return line


def batch_keys_of(rows):
    """The keys of rows as _match sends them: the email and the phone blind indexes, each kind
    joined into one bytes value, and the list of external ids."""
    return (
        b"".join(r.email_index for r in rows if r.email_index),
        b"".join(r.phone_index for r in rows if r.phone_index),
        [r.values["external_id"] for r in rows if r.values.get("external_id")],
    )


def copy_in(statement, data):
    """Run a COPY ... FROM STDIN of `data` (bytes in COPY's text format).

    The data is handed to libpq whole, in blocking mode, which releases the GIL until all of it
    is sent. psycopg's own writer sends it in small non-blocking steps, each of which needs the
    GIL back; while the thread reading the file holds the GIL, PostgreSQL would wait for data
    between the steps (most of the time, on a busy machine).
    """
    with connection.wrap_database_errors, connection.cursor() as cursor:
        with cursor.copy(statement), _blocking_sends() as pgconn:
            if not (pgconn.put_copy_data(data) == 1 and pgconn.flush() == 0):
                raise psycopg.OperationalError(pgconn.get_error_message())


@contextlib.contextmanager
def _blocking_sends():
    """The connection's libpq in blocking mode: sending blocks in libpq, without the GIL."""
    pgconn = connection.connection.pgconn
    was = pgconn.nonblocking
    pgconn.nonblocking = 0
    try:
        yield pgconn
    finally:
        pgconn.nonblocking = was


def new_id():
    """The text of a fresh UUIDv7 (as cims.ids.uuid7, without making a UUID object)."""
    value = f"{uuid7_int(time.time_ns() // 1_000_000, _random80()):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


@dataclass(slots=True)
class Row:
    """One row of the file as read through the mapping.

    `pk`, `line` and `record` are the new customer the row would create (its id, its line for
    COPY and its ImportedCustomer's), prepared with the row in case the row creates one; None
    when it cannot as it is.
    """

    number: int
    values: dict
    attributes: dict
    email_index: bytes | None = None
    phone_index: bytes | None = None
    keys: tuple = ()
    pk: str | None = None
    line: bytes | None = None
    record: bytes | None = None  # its ImportedCustomer, as a COPY line


@dataclass(slots=True)
class ReadBatch:
    """Rows read and prepared together, with the problems of those that failed among them."""

    rows: list
    problems: list  # (row, column, value, reason), in the order of the file
    failed: int
    total: int  # rows of the file read so far
    keys: tuple = ()  # the rows' keys as _match sends them (batch_keys_of)


@dataclass
class Outcome:
    total: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    problems: int = 0
    known: int = 0
    preview: list = field(default_factory=list)
    problem_sample: list = field(default_factory=list)

    def counts(self):
        return {
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "problems": self.problems,
            "known": self.known,
        }


class ProblemReport:
    """The error report, written as the import goes: CSV in UTF-8 with a byte-order mark (so
    Excel reads it as UTF-8), every cell protected from being run as a formula."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.buffer = io.StringIO()
        self.buffer.write("\ufeff")
        self.writer = csv.writer(self.buffer)
        self.writer.writerow([_("Row"), _("Column"), _("Value"), _("Problem")])
        self.file = None

    def add(self, row, column, value, reason):
        self.outcome.problems += 1
        if len(self.outcome.problem_sample) < PROBLEM_SAMPLE:
            self.outcome.problem_sample.append(
                {"row": row, "column": column, "value": _short(value), "reason": reason}
            )
        # The reason too: some quote the cell ("=1+2 is not a valid value for Level.").
        self.writer.writerow(
            [row, safe_cell(column), safe_cell(_report_text(value)), safe_cell(reason)]
        )
        if self.buffer.tell() > 1024 * 1024:
            self._spill()

    def _spill(self):
        import tempfile

        if self.file is None:
            self.file = tempfile.TemporaryFile("w+b")
        self.file.write(self.buffer.getvalue().encode())
        self.buffer.seek(0)
        self.buffer.truncate()

    def content(self):
        """The report as a Django File, to save into a FileField."""
        from django.core.files import File

        if self.file is None:
            return ContentFile(self.buffer.getvalue().encode())
        self._spill()
        self.file.seek(0)
        return File(self.file)


def _report_text(value):
    from customers.import_fields import cell_text

    return cell_text(value)


def _short(value):
    from customers.import_fields import cell_text

    text = cell_text(value)
    return text if len(text) <= 100 else text[:99] + "…"


class Importer:
    """Runs one CustomerImport: see the module's docstring."""

    def __init__(self, job, *, path=None, batch_rows=BATCH_ROWS):
        self.job = job
        # The command line reads the file where it is; the wizard's upload is in the job.
        self.path = path or job.file.path
        self.user = job.user
        self.batch_rows = batch_rows
        self.mode = job.on_duplicate
        self.now = timezone.now()
        self.custom_fields = list(CustomField.objects.filter(active=True))
        self.required = [f for f in self.custom_fields if f.required]
        self.columns = [
            (int(column), target, reader(target, self.custom_fields))
            for column, target in sorted(job.mapping.items(), key=lambda kv: int(kv[0]))
            if target
        ]
        self.mapped = {target for _column, target, _read in self.columns}
        # (column, reader, key in values, key in attributes) for reading rows
        self.readers = [
            (column, read, *((None, target[5:]) if target.startswith("attr:") else (target, None)))
            for column, target, read in self.columns
        ]
        self.owners = None
        if "owner" in self.mapped:
            self.owners = dict(assignable_owners(self.user).values_list("username", "pk"))
        teams = team_ids(self.user)
        self.team_id = next(iter(teams)) if len(teams) == 1 else None
        self.names = {}
        self.companies = {}
        self.tags = set()
        self.aads = {
            name: f"{TABLE}.{Customer._meta.get_field(name).column}.".encode() for name in ENCRYPTED
        }
        # The columns every new customer of this import has in common, as COPY text.
        now, user = self.now.isoformat(), str(self.user.pk)
        team = COPY_NULL if self.team_id is None else str(self.team_id)
        self.common_columns = f"{team}\t{now}\t{now}\t{user}\t{user}\t1\n"
        # Set when someone saved one of the file's keys during a run (see run()).
        self.checked_inserts = False
        self.outcome = Outcome()
        self.report = ProblemReport(self.outcome)
        self.headers = []

    # Running -----------------------------------------------------------------------------

    def run(self, *, dry_run=False, progress=None):
        """Import the file, or only check it (dry_run: everything is rolled back at the end).

        A real run saves the import's outcome and its audit entry in the same transaction as
        the customers, so a run that is interrupted leaves no trace and can simply start again.
        Returns the Outcome; raises ImportFileError for a file that cannot be read at all.
        """
        if not can_import(self.user):
            # Queued while they could; the permission, or the account, was withdrawn since.
            raise ImportFileError(
                _("%(user)s may no longer import customers.") % {"user": self.user}
            )
        try:
            return self._run(dry_run, progress)
        except SavedMeanwhile:
            # Rare: someone saved a customer with one of the file's keys while its batch was
            # copied. Everything was rolled back; the second run inserts with ON CONFLICT DO
            # NOTHING, which makes such a row fail rather than the import.
            self.checked_inserts = True
            self.outcome = Outcome()
            self.report = ProblemReport(self.outcome)
            self.tags = set()
            return self._run(dry_run, progress)

    def _run(self, dry_run, progress):
        rows = iter_rows(self.path, self._file_info())
        self.headers = read_header(rows)
        cleaner = None
        try:
            with transaction.atomic():
                if not dry_run and not self._claim():
                    rows.close()
                    raise ImportBusy
                self._create_staging_tables()
                cleaner = self._defer_search_indexes()
                unclean = self._import_rows(rows, progress, cleaner)
                if cleaner and unclean >= CLEAN_AFTER_ROWS:
                    # Alongside the commit, whose deferred foreign-key checks take as long.
                    cleaner.clean()
                if dry_run:
                    transaction.set_rollback(True)
                else:
                    if self.tags:
                        Tag.remember(sorted(self.tags))
                    self._finish(dry_run=False)
        finally:
            if cleaner:
                cleaner.close()
        if dry_run:
            self._finish(dry_run=True)
        return self.outcome

    def _claim(self):
        """Lock the import for this run; False when another run holds it or it is finished."""
        return (
            CustomerImport.objects.select_for_update(skip_locked=True)
            .filter(
                pk=self.job.pk,
                state__in=[CustomerImport.State.QUEUED, CustomerImport.State.RUNNING],
            )
            .exists()
        )

    def _file_info(self):
        from customers.import_files import FileInfo

        job = self.job
        return FileInfo(format=job.file_format, encoding=job.encoding, delimiter=job.delimiter)

    def _import_rows(self, rows, progress, cleaner):
        """Read, match and write every batch; returns the rows written since the cleaner
        was last asked to clean."""
        started = time.monotonic()
        last_progress = written = 0
        # The file is read and its rows prepared in a thread, a batch or two ahead, while this
        # one has PostgreSQL write the batch before: the waits for the database let the other
        # thread run, so the two take little more than the longer of them.
        batches = _read_ahead(self._read_batches(rows), depth=2)
        threshold = gc.get_threshold()
        # Reading makes millions of short-lived objects, and the garbage collector's rounds
        # over everything the process holds (Django's, pypinyin's) took a fifth of the reading
        # thread's time: what existed before is left out of its rounds, and young objects are
        # collected less often. Reference cycles are still collected.
        gc.freeze()
        gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])
        try:
            for batch in batches:
                for problem in batch.problems:
                    self.report.add(*problem)
                self.outcome.failed += batch.failed
                self.outcome.total = batch.total
                if batch.rows:
                    self._write_batch(batch.rows, batch.keys)
                    written += len(batch.rows)
                    if cleaner and written >= CLEAN_EVERY_ROWS:
                        cleaner.clean()
                        written = 0
                if progress and self.outcome.total - last_progress >= self.batch_rows:
                    last_progress = self.outcome.total
                    progress(self.outcome.total, time.monotonic() - started)
        finally:
            batches.close()
            gc.set_threshold(*threshold)
            gc.unfreeze()
        if progress:
            progress(self.outcome.total, time.monotonic() - started)
        return written

    def _read_batches(self, rows):
        """ReadBatch after ReadBatch of the file's rows, read, checked and prepared.

        Runs in the reading thread: it uses no database, only what __init__ loaded. A batch is
        cut short where a row repeats a key of the batch (see the module's docstring).
        """
        limit = settings.IMPORT_MAX_ROWS
        width = len(self.headers)
        # A short first batch, so that the database starts writing while the rest is read.
        size = min(self.batch_rows, FIRST_BATCH_ROWS)
        total = 0
        batch, batch_keys, problems, failed = [], set(), [], 0
        try:
            for number, cells in enumerate(rows, start=2):
                if not any(c not in (None, "") for c in cells):
                    continue  # blank lines are not rows
                total += 1
                if total > limit:
                    raise ImportFileError(
                        _("The file has more than %(max)s rows; split it into smaller files.")
                        % {"max": f"{limit:,}"}
                    )
                row = self._read(number, cells, width, problems)
                if row is None:
                    failed += 1
                    continue
                if len(batch) >= size or batch_keys.intersection(row.keys):
                    yield ReadBatch(batch, problems, failed, total, batch_keys_of(batch))
                    batch, batch_keys, problems, failed = [], set(), [], 0
                    size = self.batch_rows
                self._prepare_creation(row)
                batch.append(row)
                batch_keys.update(row.keys)
            yield ReadBatch(batch, problems, failed, total, batch_keys_of(batch))
        finally:
            rows.close()

    def _read(self, number, cells, width, problems):
        """The row's values, or None when a cell cannot be read (its problems added)."""
        if len(cells) != width:
            extra = cells[width:]
            # A spreadsheet row may simply end early, or carry empty cells past the header.
            if self.job.file_format != "xlsx" or any(c not in (None, "") for c in extra):
                problems.append(
                    (
                        number,
                        "",
                        "",
                        _("The row has %(found)d columns; the header has %(expected)d.")
                        % {"found": len(cells), "expected": width},
                    )
                )
                return None
            cells = list(cells) + [None] * (width - len(cells))
        values, attributes, bad = {}, {}, False
        for column, read, key, attribute in self.readers:
            cell = cells[column]
            if cell is None or cell == "":
                continue
            try:
                value = read(cell)
            except CellError as error:
                problems.append((number, self.headers[column], cell, str(error)))
                bad = True
                continue
            if value == "" or value == []:
                continue
            if attribute is None:
                values[key] = value
            else:
                attributes[attribute] = value
        if "owner" in values:
            owner = self.owners.get(values["owner"])
            if owner is None:
                problems.append(
                    (
                        number,
                        self._column_of("owner"),
                        values["owner"],
                        _("No active user you may assign customers to has this username."),
                    )
                )
                bad = True
            values["owner_id"] = owner
            del values["owner"]
        if bad:
            return None
        row = Row(number, values, attributes)
        keys = []
        if email := values.get("email"):
            row.email_index = search.email_index(email)
            keys.append(("email", row.email_index))
        if phone := values.get("phone"):
            # search.phone_indexes without the last four digits' index, made with the line.
            row.phone_index = crypto.blind_index(phone, "phone")
            keys.append(("phone", row.phone_index))
        if external := values.get("external_id"):
            keys.append(("external_id", external))
        row.keys = tuple(keys)
        return row

    def _column_of(self, target):
        for column, mapped, _read in self.columns:
            if mapped == target:
                return self.headers[column]
        return target

    # Matching and deciding ---------------------------------------------------------------

    def _match(self, batch, keys=None):
        """{(key name, key value): (id, version, names...)} of the customers the batch matches
        (`keys`: batch_keys_of(batch), when known)."""
        emails, phones, externals = keys or batch_keys_of(batch)
        if not (emails or phones or externals):
            return {}
        # One index probe per key (joined to the keys): PostgreSQL misjudges "= ANY" over
        # thousands of keys and scans the whole table instead. The blind indexes (all of one
        # length) are sent as one value each, cut apart by the database: a list of thousands
        # of values costs more to send than the lookup.
        columns = (
            "c.id, c.email_index, c.phone_index, c.external_id, c.version, c.display_name, "
            "c.family_name, c.given_name, c.company"
        )
        size = INDEX_BYTES
        parts, params = [], []
        for keys, column in ((emails, "email_index"), (phones, "phone_index")):
            if keys:
                parts.append(
                    f"SELECT {columns} FROM {TABLE} c JOIN (SELECT substring(k.keys FROM i * "
                    f"{size} + 1 FOR {size}) AS v FROM (SELECT %s::bytea AS keys) k, "
                    f"generate_series(0, length(k.keys) / {size} - 1) i) k ON c.{column} = k.v"
                )
                params.append(keys)
        if externals:
            parts.append(
                f"SELECT {columns} FROM {TABLE} c JOIN unnest(%s::text[]) k(v) "
                "ON c.external_id = k.v AND c.external_id <> ''"
            )
            params.append(externals)
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            found = cursor.fetchall()
        matches = {}
        for pk, email_index, phone_index, external_id, *rest in found:
            customer = (pk, *rest)
            if email_index is not None:
                matches[("email", bytes(email_index))] = customer
            if phone_index is not None:
                matches[("phone", bytes(phone_index))] = customer
            if external_id:
                matches[("external_id", external_id)] = customer
        return matches

    def _write_batch(self, batch, keys=None):
        matches = self._match(batch, keys)
        changeable = set()
        if self.mode == CustomerImport.OnDuplicate.UPDATE and matches:
            ids = {m[0] for m in matches.values()}
            changeable = set(
                changeable_customers(self.user, Customer.objects.filter(pk__in=ids)).values_list(
                    "pk", flat=True
                )
            )
        creates, updates, targets, later = [], [], set(), []
        for row in batch:
            if matches.keys().isdisjoint(row.keys):
                if self._creatable(row):
                    creates.append(row)
                continue
            found = {key[0]: matches[key] for key in row.keys if key in matches}
            if not found:
                if self._creatable(row):
                    creates.append(row)
                continue
            self.outcome.known += 1
            if self.mode == CustomerImport.OnDuplicate.SKIP:
                self.outcome.skipped += 1
            elif self.mode == CustomerImport.OnDuplicate.CREATE:
                for key in found:
                    self._drop_clashing(row, key)
                if self._creatable(row):
                    creates.append(row)
            else:
                customer = self._update_target(row, found, changeable)
                if customer is None:
                    continue
                if customer[0] in targets:
                    # Two rows for one customer: the second sees the first's change.
                    self.outcome.known -= 1
                    later.append(row)
                    continue
                targets.add(customer[0])
                updates.append((row, customer))
        if creates:
            self._insert(creates)
        if updates:
            self._update(updates)
        if later:
            self._write_batch(later)

    def _creatable(self, row):
        values = row.values
        if not values.get("display_name"):
            values["display_name"] = Customer.name_from_parts(
                values.get("family_name", ""), values.get("given_name", "")
            )
        problem = None
        if not values["display_name"]:
            problem = (
                "",
                _("A new customer needs a name: map a name column, or family and given names."),
            )
        elif len(values["display_name"]) > 200:
            problem = ("", _("The name is longer than 200 characters."))
        else:
            for definition in self.required:
                if row.attributes.get(definition.key) in (None, "", []):
                    problem = (
                        definition.display_label,
                        _("%(field)s is required.") % {"field": definition.display_label},
                    )
                    break
        if problem:
            self.report.add(row.number, problem[0], "", problem[1])
            self.outcome.failed += 1
            return False
        return True

    def _drop_clashing(self, row, key):
        """Create anyway: the new customer is created without the value another one has."""
        label = {
            "email": _("email"),
            "phone": _("mobile number"),
            "external_id": _("external ID"),
        }[key]
        value = row.values.pop(key)
        if key == "email":
            row.email_index = None
        elif key == "phone":
            row.phone_index = None
        row.line = None  # prepared with the value
        self.report.add(
            row.number,
            self._column_of(key),
            value,
            _("Created without this %(what)s: another customer already has it.") % {"what": label},
        )

    def _update_target(self, row, found, changeable):
        customers = {m[0]: m for m in found.values()}
        if len(customers) > 1:
            described = ", ".join(field_label(k, self.custom_fields) for k in KEYS if k in found)
            self.report.add(
                row.number,
                "",
                "",
                _("These values belong to different customers: %(fields)s. Nothing was changed.")
                % {"fields": described},
            )
            self.outcome.failed += 1
            return None
        customer = next(iter(customers.values()))
        if customer[0] not in changeable:
            key = next(k for k in KEYS if k in found)
            self.report.add(
                row.number,
                self._column_of(key),
                row.values.get(key, ""),
                _("A customer you may not change already has this value."),
            )
            self.outcome.failed += 1
            return None
        return customer

    # Writing -----------------------------------------------------------------------------

    def _defer_search_indexes(self):
        """Let the GIN indexes gather the import's entries, to be merged in bulk.

        A GIN index takes new entries into a pending list, merged into the index by whoever
        finds the list longer than gin_pending_list_limit (4 MB): with the default, the import
        itself, a little at a time, which is slow. The limit is raised for the import's
        transaction, and a PendingListCleaner merges the lists on a connection of its own, in
        bulk, every CLEAN_EVERY_ROWS rows and at the end. The pending list is searched like the
        index, so searches find the same customers meanwhile. Returns the cleaner, or None when
        this database user may not clean the indexes (then they are left as they are).
        """
        with connection.cursor() as cursor:
            # The statements here are index probes; a parallel plan only adds its start-up.
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(
                "SELECT c.oid::regclass::text FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                "WHERE i.indrelid = %s::regclass AND a.amname = 'gin' "
                "AND pg_has_role(c.relowner, 'USAGE')",
                [TABLE],
            )
            indexes = [name for (name,) in cursor.fetchall()]
            if not indexes:
                return None
            cursor.execute("SET LOCAL gin_pending_list_limit = '256MB'")
        return PendingListCleaner(indexes)

    def _create_staging_tables(self):
        with connection.cursor() as cursor:
            # Inside an outer transaction (tests) an earlier run's tables may still exist.
            cursor.execute("DROP TABLE IF EXISTS import_new, import_changed")
            cursor.execute(
                f"CREATE TEMPORARY TABLE import_new ON COMMIT DROP AS "
                f"SELECT {', '.join(COLUMNS)}, 0 AS import_row FROM {TABLE} WITH NO DATA"
            )
            cursor.execute(
                f"CREATE TEMPORARY TABLE import_changed ON COMMIT DROP AS "
                f"SELECT id, {', '.join(CHANGED)}, tags, attributes, 0 AS import_row, "
                f"0 AS expected_version FROM {TABLE} WITH NO DATA"
            )

    def _name_columns(self, display_name, family, given):
        """What a name gives the search columns (search.combine_search_fields, prepared once
        per name): its pinyin, its texts, its alternatives, its keys; and the columns of a
        customer of that name without a company."""
        key = (display_name, family, given)
        columns = self.names.get(key)
        if columns is None:
            if len(self.names) >= CACHED_NAMES:
                self.names.clear()  # memory stays flat on files of many distinct names
            terms = search.name_terms(display_name, family, given)
            texts = tuple(dict.fromkeys(p for p in terms["text"] if p))
            alternatives = tuple(a for a in terms["alternatives"] if a)
            # Interned: the same fragments and syllables recur in thousands of names.
            keys = frozenset(sys.intern(k) for k in terms["keys"] if k)
            alone = " ".join(dict.fromkeys((*texts, *alternatives)))
            columns = self.names[key] = (
                terms["pinyin"],
                texts,
                alternatives,
                keys,
                alone,
                pg_array(sorted(keys)[:200]),
            )
        return columns

    def _company_columns(self, company):
        columns = self.companies.get(company)
        if columns is None:
            if len(self.companies) >= CACHED_COMPANIES:
                self.companies.clear()
            terms = search.company_terms(company)
            columns = self.companies[company] = (
                terms["text"],
                tuple(sys.intern(k) for k in terms["keys"] if k),
            )
        return columns

    def _search_columns(self, display_name, family, given, company):
        """(name_pinyin, search_text, search_keys as an array literal), as
        search.search_fields computes them."""
        pinyin, texts, alternatives, keys, alone, keys_literal = self._name_columns(
            display_name, family, given
        )
        company_text, company_keys = self._company_columns(company) if company else ("", ())
        text = alone
        if company_text:
            text = " ".join(dict.fromkeys((*texts, company_text, *alternatives)))
        if company_keys and not keys.issuperset(company_keys):
            keys_literal = pg_array(sorted(keys.union(company_keys))[:200])
        return pinyin, text, keys_literal

    def _seal(self, name, value, pk_text):
        if value is None or value == "":
            return None
        plaintext = value.isoformat().encode() if name == "birthday" else value.encode()
        return crypto.encrypt(plaintext, self.aads[name] + pk_text.encode())

    def _prepare_creation(self, row):
        """Give the row the id and the COPY line of the customer it would create.

        Done for every row as it is read, ahead of matching (most rows of a file are new
        customers); a row that turns out to create nothing just leaves its line unused.
        """
        v = row.values
        family, given = v.get("family_name", ""), v.get("given_name", "")
        # As _creatable names it; a row that cannot be created as it is gets no line.
        name = v.get("display_name") or Customer.name_from_parts(family, given)
        if not name or len(name) > 200:
            row.pk = row.line = row.record = None
            return
        pk = new_id()
        company = v.get("company", "")
        pinyin, search_text, search_keys = self._search_columns(name, family, given, company)
        tags = v.get("tags")
        texts = copy_texts(
            (
                name, family, given, v.get("gender", ""), company, v.get("job_title", ""),
                v.get("country", "CN"), v.get("province", ""), v.get("city", ""),
                v.get("district", ""), v.get("postcode", ""), v.get("source", Source.IMPORT),
                v.get("status", "lead"), pg_array(tags) if tags else "{}", v.get("notes", ""),
                json.dumps(row.attributes, ensure_ascii=False) if row.attributes else "{}",
                pinyin, search_text, search_keys, v.get("external_id", ""),
            )
        )  # fmt: skip
        seal, aads, aad = crypto.encrypt, self.aads, pk.encode()
        sealed = []
        for encrypted in ENCRYPTED:
            value = v.get(encrypted)
            if value is None or value == "":
                sealed.append(COPY_NULL)
            else:
                plaintext = value.isoformat() if encrypted == "birthday" else value
                sealed.append(copy_bytes(seal(plaintext.encode(), aads[encrypted] + aad)))
        phone = v.get("phone")
        last4 = crypto.blind_index(phone[-4:], "phone_last4") if phone else None
        birthday = v.get("birthday")
        birth_year = str(birthday.year) if birthday else COPY_NULL
        row.pk = pk
        row.record = f"{self.job.pk}\t{pk}\t{row.number}\tt\t1\n".encode()
        row.line = (
            f"{texts}\t{pk}\t{sealed[2]}\t{birth_year}\t{sealed[0]}\t{sealed[1]}\t{sealed[3]}\t"
            f"{copy_bytes(row.email_index)}\t{copy_bytes(row.phone_index)}\t"
            f"{copy_bytes(last4)}\t{v.get('owner_id', self.user.pk)}\t{self.common_columns}"
        ).encode()

    def _insert(self, rows):
        """Create the customers of these rows: their prepared lines copied into the table."""
        lines, records = [], []
        for row in rows:
            if row.line is None:
                self._prepare_creation(row)  # its values changed since it was read
            lines.append(row.line)
            records.append(row.record)
            if tags := row.values.get("tags"):
                self.tags.update(tags)
        for row in rows[: PREVIEW_ROWS - len(self.outcome.preview)]:
            self._remember_preview(row, row.pk, created=True)
        if self.checked_inserts:
            self._insert_checked(rows, lines)
            return
        try:
            copy_in(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN", b"".join(lines))
        except IntegrityError as error:
            if not isinstance(error.__cause__, psycopg.errors.UniqueViolation):
                raise
            # The batch's keys were new when matched: someone has saved one since.
            raise SavedMeanwhile from error
        copy_in(
            "COPY customers_importedcustomer "
            "(customer_import_id, customer_id, row, created, version) FROM STDIN",
            b"".join(records),
        )
        self.outcome.created += len(rows)

    def _insert_checked(self, rows, lines):
        """_insert through the staging table and ON CONFLICT DO NOTHING: a row whose key
        someone saved meanwhile fails, not the import."""
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE import_new")
            copy_in(
                f"COPY import_new ({', '.join(COLUMNS)}, import_row) FROM STDIN",
                b"".join(
                    line[:-1] + b"\t%d\n" % row.number
                    for row, line in zip(rows, lines, strict=True)
                ),
            )
            cursor.execute(
                f"WITH added AS (INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
                f"SELECT {', '.join(COLUMNS)} FROM import_new ORDER BY id "
                "ON CONFLICT DO NOTHING RETURNING id) "
                "INSERT INTO customers_importedcustomer "
                "(customer_import_id, customer_id, row, created, version) "
                "SELECT %s, s.id, s.import_row, TRUE, 1 FROM import_new s JOIN added USING (id)",
                [self.job.pk],
            )
            inserted = cursor.rowcount
            self.outcome.created += inserted
            if inserted < len(rows):
                cursor.execute(
                    f"SELECT s.import_row FROM import_new s LEFT JOIN {TABLE} c USING (id) "
                    "WHERE c.id IS NULL ORDER BY 1"
                )
                for (number,) in cursor.fetchall():
                    self._lost_race(number)

    def _lost_race(self, number):
        self.report.add(
            number,
            "",
            "",
            _(
                "Someone saved a customer with the same email, mobile number or external ID "
                "while the file was being imported. Import this row again."
            ),
        )
        self.outcome.failed += 1

    def _update(self, updates):
        seal = self._seal
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE import_changed")
            columns = ("id", *CHANGED, "tags", "attributes", "import_row", "expected_version")
            with cursor.copy(f"COPY import_changed ({', '.join(columns)}) FROM STDIN") as copy:
                for row, customer in updates:
                    pk, version, old_name, old_family, old_given, old_company = customer
                    pk_text = str(pk)
                    v = row.values
                    family = v.get("family_name", old_family)
                    given = v.get("given_name", old_given)
                    name = v.get("display_name")
                    if not name and ("family_name" in v or "given_name" in v):
                        name = Customer.name_from_parts(family, given) or None
                    company = v.get("company", old_company)
                    pinyin = search_text = search_keys = None
                    if name or "family_name" in v or "given_name" in v or "company" in v:
                        pinyin, search_text, search_keys = self._search_columns(
                            name or old_name, family, given, company
                        )
                    phone = v.get("phone")
                    tags = v.get("tags")
                    if tags:
                        self.tags.update(tags)
                    copy.write_row(
                        (
                            pk_text, name, v.get("family_name"), v.get("given_name"),
                            v.get("gender"), seal("birthday", v.get("birthday"), pk_text),
                            v["birthday"].year if v.get("birthday") else None,
                            seal("email", v.get("email"), pk_text),
                            seal("phone", phone, pk_text), v.get("company"), v.get("job_title"),
                            v.get("country"), v.get("province"), v.get("city"),
                            v.get("district"), seal("street", v.get("street"), pk_text),
                            v.get("postcode"), v.get("source"), v.get("status"),
                            v.get("owner_id"), v.get("notes"),
                            pinyin, search_text, search_keys,
                            row.email_index, row.phone_index,
                            crypto.blind_index(phone[-4:], "phone_last4") if phone else None,
                            v.get("external_id"), pg_array(tags) if tags else None,
                            json.dumps(row.attributes, ensure_ascii=False)
                            if row.attributes else None,
                            row.number, version,
                        )
                    )  # fmt: skip
                    self._remember_preview(row, pk_text, created=False)
            # Locked first, so that the kept rows are exactly those the UPDATE changes.
            cursor.execute(
                f"SELECT c.id FROM {TABLE} c JOIN import_changed s USING (id) "
                "WHERE c.version = s.expected_version FOR UPDATE OF c"
            )
            cursor.execute(
                "INSERT INTO customers_importedcustomer "
                "(customer_import_id, customer_id, row, created, version, previous) "
                f"SELECT %s, c.id, s.import_row, FALSE, c.version + 1, to_jsonb(c) "
                f"FROM {TABLE} c JOIN import_changed s USING (id) "
                "WHERE c.version = s.expected_version",
                [self.job.pk],
            )
            assignments = [f"{c} = COALESCE(s.{c}, c.{c})" for c in CHANGED]
            cursor.execute(
                f"UPDATE {TABLE} c SET {', '.join(assignments)}, "
                "tags = CASE WHEN s.tags IS NULL THEN c.tags ELSE (c.tags || ARRAY("
                "SELECT t FROM unnest(s.tags) t WHERE NOT t = ANY(c.tags)))"
                f"[1:{MAX_TAGS}] END, "
                "attributes = c.attributes || COALESCE(s.attributes, '{}'::jsonb), "
                "version = c.version + 1, updated_at = %s, updated_by_id = %s "
                "FROM import_changed s WHERE c.id = s.id AND c.version = s.expected_version",
                [self.now, self.user.pk],
            )
            changed = cursor.rowcount
            self.outcome.updated += changed
            if changed < len(updates):
                cursor.execute(
                    f"SELECT s.import_row FROM import_changed s LEFT JOIN {TABLE} c USING (id) "
                    "WHERE c.id IS NULL OR c.version <> s.expected_version + 1 "
                    "OR c.updated_at <> %s ORDER BY 1",
                    [self.now],
                )
                for (number,) in cursor.fetchall():
                    self._lost_race(number)

    def _remember_preview(self, row, pk, *, created):
        if len(self.outcome.preview) >= PREVIEW_ROWS:
            return
        # Kept by field key, so the page names the fields in the reader's language.
        shown = [[k, _preview_value(k, v)] for k, v in row.values.items() if k != "owner_id"]
        shown += [[f"attr:{k}", _preview_value(k, v)] for k, v in row.attributes.items()]
        self.outcome.preview.append({"row": row.number, "created": created, "values": shown})

    def _finish(self, *, dry_run):
        job, outcome = self.job, self.outcome
        fields = {
            "total_rows": outcome.total,
            "processed": outcome.total,
            "created": outcome.created,
            "updated": outcome.updated,
            "skipped": outcome.skipped,
            "failed": outcome.failed,
            "problem_count": outcome.problems,
            "preview": {
                "rows": outcome.preview,
                "problems": outcome.problem_sample,
                "counts": outcome.counts(),
                "on_duplicate": job.on_duplicate,
            },
        }
        if job.state == CustomerImport.State.CHECKING:
            fields["state"] = CustomerImport.State.CHECKED
        else:
            fields.update(state=CustomerImport.State.DONE, finished_at=timezone.now())
        old_report = job.report.name if job.report else ""
        job.report.save(f"{job.pk}-problems.csv", self.report.content(), save=False)
        fields["report"] = job.report.name
        if not dry_run:
            audit.record(
                audit.Action.IMPORT,
                target=job,
                actor=self.user,
                data={"file": job.file_name, "on_duplicate": job.on_duplicate, **outcome.counts()},
            )
        if not CustomerImport.objects.filter(pk=job.pk, state=job.state).update(**fields):
            # The import moved on meanwhile (a check delivered twice, whose twin finished before
            # the import was started): these results are not the import's to show.
            job.report.storage.delete(job.report.name)
            raise ImportBusy
        if old_report and old_report != job.report.name:
            job.report.storage.delete(old_report)
        for name, value in fields.items():
            setattr(job, name, value)


def _preview_value(key, value):
    from customers.masking import mask

    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = _("Yes") if value else _("No")
    if key in ENCRYPTED:
        # The preview is kept with the import; sensitive values are kept masked, as lists show.
        return mask(key, value)
    return str(value)


def _random80():
    return int.from_bytes(os.urandom(10))


class ImportBusy(Exception):
    """The import is being run by another worker, or has finished."""


class SavedMeanwhile(Exception):
    """A customer with a key of the batch being copied was saved since the batch was matched."""


class PendingListCleaner:
    """Merges the pending lists of GIN indexes into the indexes (gin_clean_pending_list), in a
    thread on a database connection of its own, while the import goes on.

    The entries of rows the import has not committed are merged too, as autovacuum would merge
    them: an index entry says nothing of its row's visibility, and those of rows rolled back
    are removed by vacuum. A cleaning that fails (the connection lost) is logged, not raised:
    the lists are then merged by autovacuum, or by the next insert that finds them too long.
    """

    def __init__(self, indexes):
        self.indexes = indexes
        self.requests = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._work, name="customer-import-index-cleaner", daemon=True
        )
        self.thread.start()

    def clean(self):
        """Merge the lists as they are now, in the background."""
        self.requests.put(True)

    def close(self):
        """Wait for the cleanings asked for, and close the connection."""
        self.requests.put(False)
        self.thread.join()

    def _work(self):
        failed = False
        try:
            while self.requests.get():
                if failed:
                    continue
                try:
                    # This thread's own connection (Django's are per thread), in autocommit.
                    with connection.cursor() as cursor:
                        for index in self.indexes:
                            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
                except DatabaseError:
                    logger.warning("Could not merge the pending lists of %s", self.indexes)
                    failed = True
        finally:
            connection.close()


def _read_ahead(items, depth):
    """Iterate over `items` computed in a thread, at most `depth` items ahead of the caller.

    The thread speaks the caller's language (its messages are for the same user); an exception
    in it is raised here. Close the iterator to stop the thread early: it stops after the item
    it is computing, and closes `items`.
    """
    results = queue.Queue(depth)
    stop = threading.Event()
    language = translation.get_language()
    finished = object()

    def put(result):
        while not stop.is_set():
            try:
                results.put(result, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            with translation.override(language):
                for item in items:
                    if not put((item, None)):
                        return
        except BaseException as error:  # noqa: BLE001 (raised again in the caller)
            put((None, error))
            return
        finally:
            items.close()
        put((finished, None))

    thread = threading.Thread(target=work, name="customer-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = results.get()
            if error is not None:
                raise error
            if item is finished:
                return
            yield item
    finally:
        stop.set()
        thread.join()


# Running an import and reverting one -------------------------------------------------------


def execute(job, *, dry_run, path=None):
    """Check (dry_run) or run an import, recording its progress for the page that shows it.

    A file that turns out unreadable fails the import with the reason; returns the Outcome, or
    None when the import failed or another worker holds it.
    """
    importer = Importer(job, path=path)

    def progress(rows, seconds):
        cache.set(progress_key(job.pk), rows, 3600)

    try:
        outcome = importer.run(dry_run=dry_run, progress=progress)
    except ImportBusy:
        return None
    except ImportFileError as error:
        CustomerImport.objects.filter(pk=job.pk).update(
            state=CustomerImport.State.FAILED, error=str(error), finished_at=timezone.now()
        )
        job.refresh_from_db()
        return None
    finally:
        cache.delete(progress_key(job.pk))
    return outcome


# A customer an import touched several times (created by one row and updated by a later one, or
# updated by two rows) has several records: the first says whether the import created it and
# holds its row from before the import; the last version is the one the import left.
RECORDS_OF_CUSTOMERS = (
    "customers_interaction",
    "customers_order",
    "customers_consent",
    "intake_submission",
)

TOUCHED = """
WITH first AS (
    SELECT DISTINCT ON (customer_id) customer_id, created, previous
      FROM customers_importedcustomer WHERE customer_import_id = %(import)s
     ORDER BY customer_id, version
), last AS (
    SELECT customer_id, max(version) AS version
      FROM customers_importedcustomer WHERE customer_import_id = %(import)s
     GROUP BY customer_id
), touched AS (
    SELECT first.*, last.version FROM first JOIN last USING (customer_id)
)
"""


def revert(job, *, user):
    """Undo a finished import: delete the customers it created and restore those it changed.

    Customers changed by anyone since the import (their version moved on) are left as they are;
    returns (deleted, restored, kept). Returns None, leaving the import done with the reason in
    its error, when a customer's earlier email, mobile number or external ID now belongs to
    another customer.
    """
    with transaction.atomic():
        locked = CustomerImport.objects.select_for_update().get(pk=job.pk)
        if locked.state not in (CustomerImport.State.DONE, CustomerImport.State.REVERTING):
            return None
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                deleted, restored, kept = _revert_rows(cursor, job)
        except IntegrityError:
            CustomerImport.objects.filter(pk=job.pk).update(
                state=CustomerImport.State.DONE,
                error=_(
                    "The import was not reverted: another customer now has the email, mobile "
                    "number or external ID that one of its customers had before the import. "
                    "Change it there, then revert again."
                ),
            )
            job.refresh_from_db()
            return None
        CustomerImport.objects.filter(pk=job.pk).update(
            state=CustomerImport.State.REVERTED,
            reverted_at=timezone.now(),
            reverted_by=user,
            error="",
        )
        audit.record(
            audit.Action.IMPORT_REVERT,
            target=job,
            actor=user,
            data={
                "file": job.file_name,
                "deleted": deleted,
                "restored": restored,
                "kept": kept,
            },
        )
    job.refresh_from_db()
    return deleted, restored, kept


def _revert_rows(cursor, job):
    params = {"import": job.pk}
    # The import's rows may be newer than the table's statistics; planned from stale ones (a
    # table thought nearly empty), the statements below join by nested loops, for hours.
    cursor.execute("ANALYZE customers_importedcustomer")
    # A customer the import created is kept once someone has recorded anything about it
    # (an order, a visit, a consent, a form): reverting must not delete others' work.
    recorded = " ".join(
        f"AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.customer_id = c.id)"
        for table in RECORDS_OF_CUSTOMERS
    )
    cursor.execute(
        f"{TOUCHED} DELETE FROM {TABLE} c USING touched t "
        f"WHERE t.created AND c.id = t.customer_id AND c.version = t.version {recorded}",
        params,
    )
    deleted = cursor.rowcount
    columns = [f.column for f in Customer._meta.concrete_fields if f.column != "id"]
    assignments = ", ".join(f"{c} = r.{c}" for c in columns)
    cursor.execute(
        f"{TOUCHED} UPDATE {TABLE} c SET {assignments} FROM ("
        f"SELECT (jsonb_populate_record(NULL::{TABLE}, t.previous)).*, "
        "t.version AS import_version FROM touched t WHERE NOT t.created) r "
        "WHERE c.id = r.id AND c.version = r.import_version",
        params,
    )
    restored = cursor.rowcount
    cursor.execute(
        "SELECT count(DISTINCT customer_id) FROM customers_importedcustomer "
        "WHERE customer_import_id = %s",
        [job.pk],
    )
    kept = cursor.fetchone()[0] - deleted - restored
    return deleted, restored, kept


def progress_of(job):
    """Rows done so far by a running check, import or revert (kept in the cache meanwhile)."""
    return cache.get(progress_key(job.pk)) or job.processed


def purge_files(days=None):
    """Delete the files of imports finished more than `days` ago (IMPORT_KEEP_FILES_DAYS), and
    of imports uploaded that long ago and never run; and what reverting needs of imports that
    can no longer be reverted (IMPORT_REVERT_DAYS)."""
    import datetime

    days = settings.IMPORT_KEEP_FILES_DAYS if days is None else days
    cutoff = timezone.now() - datetime.timedelta(days=days)
    # An import left in the wizard never finishes: it is closed, or its file would stay for ever.
    State = CustomerImport.State
    CustomerImport.objects.filter(
        created_at__lt=cutoff, state__in=[State.UPLOADED, State.CHECKING, State.CHECKED]
    ).update(
        state=State.FAILED,
        error=_(
            "The file was deleted %(days)s days after it was uploaded, before it was imported. "
            "Upload it again to import it."
        )
        % {"days": days},
        finished_at=timezone.now(),
    )
    old = CustomerImport.objects.filter(
        Q(finished_at__lt=cutoff) | Q(created_at__lt=cutoff, state=State.FAILED)
    ).exclude(file="", report="")
    for job in old.iterator():
        for stored in (job.file, job.report):
            if stored:
                stored.storage.delete(stored.name)
        # The preview's first rows and problems are the file's values too: only counts stay.
        counts = {k: v for k, v in job.preview.items() if k not in ("rows", "problems")}
        CustomerImport.objects.filter(pk=job.pk).update(
            file="", report="", sample=[], preview=counts
        )
    # Once an import can no longer be reverted, the customers' earlier rows kept for it go too
    # (a revert under way still needs them).
    expired = CustomerImport.objects.filter(
        finished_at__lt=timezone.now() - datetime.timedelta(days=settings.IMPORT_REVERT_DAYS)
    ).exclude(state=State.REVERTING)
    ImportedCustomer.objects.filter(customer_import__in=expired).delete()
