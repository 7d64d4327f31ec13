"""Importing customers from files: validation, matching and writing, set-based and atomic.

One `Importer` run reads the file row by row (memory stays flat however long it is) and works
in batches of a few thousand rows:

1. Each row is read through the mapping: every cell by the reader of its field
   (customers.import_fields), problems recorded as (row, column, value, reason).
2. The batch's email and phone blind indexes and external ids are looked up in one query. A row
   that matches a customer is skipped, updates it, or creates a new customer without the
   clashing values, as the import says.
3. New customers get their UUIDv7 ids here, in Python, because their encrypted values are bound
   to the row's primary key (cims.crypto). Their rows, with search columns and blind indexes,
   are copied (COPY) into a temporary table and inserted with one INSERT ... SELECT; changes to
   existing customers likewise, with one UPDATE ... FROM, after their current rows are kept
   (ImportedCustomer.previous) so that the import can be reverted.

Each row is compared with the customers as the rows above it left them: a row with the same
email as an earlier row of the file matches the customer that row created. A batch is cut short
where a row repeats a key of the batch, so this holds within a batch as well.

The whole run is one transaction, committed together with the import's counts and its audit
entry. A worker or database that dies midway leaves nothing of the import behind: the task is
delivered again (acks late) and starts over. A check ("dry run") is the same run rolled back,
so its counts and problems are exactly those the import will have, barring changes by others
in between.
"""

import csv
import io
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
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
PREVIEW_ROWS = 10
PROBLEM_SAMPLE = 200
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# The columns of a new customer, in the order rows are copied.
COLUMNS = (
    "id", "display_name", "family_name", "given_name", "gender", "birthday", "email", "phone",
    "company", "job_title", "country", "province", "city", "district", "street", "postcode",
    "source", "status", "tags", "owner_id", "team_id", "notes", "attributes", "created_at",
    "updated_at", "created_by_id", "updated_by_id", "version", "name_pinyin", "search_text",
    "search_keys", "email_index", "phone_index", "phone_last4_index", "external_id",
)  # fmt: skip
# The columns an import may change on an existing customer; NULL in a staged change keeps the
# customer's value.
CHANGED = (
    "display_name", "family_name", "given_name", "gender", "birthday", "email", "phone",
    "company", "job_title", "country", "province", "city", "district", "street", "postcode",
    "source", "status", "owner_id", "notes", "name_pinyin", "search_text", "search_keys",
    "email_index", "phone_index", "phone_last4_index", "external_id",
)  # fmt: skip
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
    values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


@dataclass
class Row:
    """One row of the file as read through the mapping."""

    number: int
    values: dict
    attributes: dict
    email_index: bytes | None = None
    phone_index: bytes | None = None
    keys: tuple = ()


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
        rows = iter_rows(self.path, self._file_info())
        self.headers = read_header(rows)
        with transaction.atomic():
            if not dry_run and not self._claim():
                raise ImportBusy
            self._create_staging_tables()
            self._import_rows(rows, progress)
            if dry_run:
                transaction.set_rollback(True)
            else:
                if self.tags:
                    Tag.remember(sorted(self.tags))
                self._finish(dry_run=False)
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

    def _import_rows(self, rows, progress):
        limit = settings.IMPORT_MAX_ROWS
        width = len(self.headers)
        batch, batch_keys = [], set()
        started = time.monotonic()
        last_progress = 0
        for number, cells in enumerate(rows, start=2):
            if not any(c not in (None, "") for c in cells):
                continue  # blank lines are not rows
            self.outcome.total += 1
            if self.outcome.total > limit:
                raise ImportFileError(
                    _("The file has more than %(max)s rows; split it into smaller files.")
                    % {"max": f"{limit:,}"}
                )
            row = self._read(number, cells, width)
            if row is None:
                continue
            if batch_keys.intersection(row.keys) or len(batch) >= self.batch_rows:
                self._write_batch(batch)
                batch, batch_keys = [], set()
                if progress and self.outcome.total - last_progress >= self.batch_rows:
                    last_progress = self.outcome.total
                    progress(self.outcome.total, time.monotonic() - started)
            batch.append(row)
            batch_keys.update(row.keys)
        if batch:
            self._write_batch(batch)
        if progress:
            progress(self.outcome.total, time.monotonic() - started)

    def _read(self, number, cells, width):
        """The row's values, or None (reported as failed) when a cell cannot be read."""
        report = self.report
        if len(cells) != width:
            extra = cells[width:]
            # A spreadsheet row may simply end early, or carry empty cells past the header.
            if self.job.file_format != "xlsx" or any(c not in (None, "") for c in extra):
                report.add(
                    number,
                    "",
                    "",
                    _("The row has %(found)d columns; the header has %(expected)d.")
                    % {"found": len(cells), "expected": width},
                )
                self.outcome.failed += 1
                return None
            cells = list(cells) + [None] * (width - len(cells))
        values, attributes, bad = {}, {}, False
        for column, target, read in self.columns:
            cell = cells[column]
            if cell is None or cell == "":
                continue
            try:
                value = read(cell)
            except CellError as error:
                report.add(number, self.headers[column], cell, str(error))
                bad = True
                continue
            if value in ("", []):
                continue
            if target.startswith("attr:"):
                attributes[target[5:]] = value
            else:
                values[target] = value
        if "owner" in values:
            owner = self.owners.get(values["owner"])
            if owner is None:
                column = self._column_of("owner")
                report.add(
                    number,
                    column,
                    values["owner"],
                    _("No active user you may assign customers to has this username."),
                )
                bad = True
            values["owner_id"] = owner
            del values["owner"]
        if bad:
            self.outcome.failed += 1
            return None
        row = Row(number, values, attributes)
        keys = []
        if email := values.get("email"):
            row.email_index = search.email_index(email)
            keys.append(("email", row.email_index))
        if phone := values.get("phone"):
            row.phone_index = search.phone_indexes(phone)[0]
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

    def _match(self, batch):
        """{(key name, key value): (id, version, names...)} of the customers the batch matches."""
        emails = [r.email_index for r in batch if r.email_index]
        phones = [r.phone_index for r in batch if r.phone_index]
        externals = [r.values["external_id"] for r in batch if r.values.get("external_id")]
        if not (emails or phones or externals):
            return {}
        # One index probe per key (joined to the unnested keys): PostgreSQL misjudges
        # "= ANY" over thousands of keys and scans the whole table instead.
        columns = (
            "c.id, c.email_index, c.phone_index, c.external_id, c.version, c.display_name, "
            "c.family_name, c.given_name, c.company"
        )
        parts, params = [], []
        for keys, cast, condition in (
            (emails, "bytea", "c.email_index = k.v"),
            (phones, "bytea", "c.phone_index = k.v"),
            (externals, "text", "c.external_id = k.v AND c.external_id <> ''"),
        ):
            if keys:
                parts.append(
                    f"SELECT {columns} FROM {TABLE} c JOIN unnest(%s::{cast}[]) k(v) ON {condition}"
                )
                params.append(keys)
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

    def _write_batch(self, batch):
        matches = self._match(batch)
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

    def _name_terms(self, display_name, family, given):
        key = (display_name, family, given)
        terms = self.names.get(key)
        if terms is None:
            if len(self.names) > 200_000:
                self.names.clear()  # memory stays flat on files of many distinct names
            terms = self.names[key] = search.name_terms(display_name, family, given)
        return terms

    def _company_terms(self, company):
        terms = self.companies.get(company)
        if terms is None:
            if len(self.companies) > 200_000:
                self.companies.clear()
            terms = self.companies[company] = search.company_terms(company)
        return terms

    def _search_columns(self, display_name, family, given, company):
        return search.combine_search_fields(
            self._name_terms(display_name, family, given), self._company_terms(company)
        )

    def _seal(self, name, value, pk_text):
        if value is None or value == "":
            return None
        plaintext = value.isoformat().encode() if name == "birthday" else value.encode()
        return crypto.encrypt(plaintext, self.aads[name] + pk_text.encode())

    def _insert(self, rows):
        now, user_id = self.now, self.user.pk
        default_source = Source.IMPORT
        seal = self._seal
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE import_new")
            with cursor.copy(
                f"COPY import_new ({', '.join(COLUMNS)}, import_row) FROM STDIN"
            ) as copy:
                for row in rows:
                    v = row.values
                    pk = str(uuid.UUID(int=uuid7_int(time.time_ns() // 1_000_000, _random80())))
                    display_name = v["display_name"]
                    family, given = v.get("family_name", ""), v.get("given_name", "")
                    company = v.get("company", "")
                    columns = self._search_columns(display_name, family, given, company)
                    phone = v.get("phone")
                    tags = v.get("tags", ())
                    if tags:
                        self.tags.update(tags)
                    copy.write_row(
                        (
                            pk, display_name, family, given, v.get("gender", ""),
                            seal("birthday", v.get("birthday"), pk),
                            seal("email", v.get("email"), pk), seal("phone", phone, pk),
                            company, v.get("job_title", ""), v.get("country", "CN"),
                            v.get("province", ""), v.get("city", ""), v.get("district", ""),
                            seal("street", v.get("street"), pk), v.get("postcode", ""),
                            v.get("source", default_source), v.get("status", "lead"),
                            pg_array(tags) if tags else "{}",
                            v.get("owner_id", user_id), self.team_id, v.get("notes", ""),
                            json.dumps(row.attributes, ensure_ascii=False)
                            if row.attributes else "{}",
                            now, now, user_id, user_id, 1, columns["name_pinyin"],
                            columns["search_text"], pg_array(columns["search_keys"]),
                            row.email_index, row.phone_index,
                            crypto.blind_index(phone[-4:], "phone_last4") if phone else None,
                            v.get("external_id", ""), row.number,
                        )
                    )  # fmt: skip
                    self._remember_preview(row, pk, created=True)
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
                    search_columns = {}
                    if name or "family_name" in v or "given_name" in v or "company" in v:
                        search_columns = self._search_columns(
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
                            seal("email", v.get("email"), pk_text),
                            seal("phone", phone, pk_text), v.get("company"), v.get("job_title"),
                            v.get("country"), v.get("province"), v.get("city"),
                            v.get("district"), seal("street", v.get("street"), pk_text),
                            v.get("postcode"), v.get("source"), v.get("status"),
                            v.get("owner_id"), v.get("notes"),
                            search_columns.get("name_pinyin"), search_columns.get("search_text"),
                            pg_array(search_columns["search_keys"]) if search_columns else None,
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
