"""Moving customers' phone, email, birthday and street between plaintext and ciphertext columns.

Shared by migrations 0005 and 0006 (the leading underscore keeps this module from being read as a
migration). It works on the columns in SQL, in keyset batches of BATCH_SIZE rows each committed
on its own outside an atomic migration, so that a million customers never sit in memory, and it
reads the keys through cims.crypto at migration time. The encoding (UTF-8 text, ISO dates), the
associated data and the blind-index purposes are those of customers.fields and customers.search.
"""

import sys
import unicodedata
import uuid

from django.db import transaction

from cims import crypto

TABLE = "customers_customer"
BATCH_SIZE = 5000
REPORT_EVERY = 100_000
COLUMNS = ("email", "phone", "birthday", "street")
INDEX_COLUMNS = ("email_index", "phone_index", "phone_last4_index")
# Rows whose plaintext has no ciphertext yet: written by the old code while 0005 ran.
NOT_YET_ENCRYPTED = (
    "((email <> '' AND encrypted_email IS NULL) OR (phone <> '' AND encrypted_phone IS NULL) "
    "OR (birthday IS NOT NULL AND encrypted_birthday IS NULL) "
    "OR (street <> '' AND encrypted_street IS NULL))"
)


def _normalized(text):
    # customers.search.normalize, as it was when email was part of search_text.
    return " ".join(unicodedata.normalize("NFKC", text or "").lower().split())


def without_email(search_text, email):
    """search_text with the email address that used to be its last word taken out."""
    address = _normalized(email)
    if not address:
        return search_text
    return " ".join(word for word in search_text.split(" ") if word != address)


def with_email(search_text, email):
    address = _normalized(email)
    if not address or address in search_text.split(" "):
        return search_text
    return f"{search_text} {address}" if search_text else address


def _seal(column, value, pk):
    return crypto.encrypt(value, crypto.row_aad(TABLE, column, pk)) if value else None


def _open(column, blob, pk):
    return crypto.decrypt(blob, crypto.row_aad(TABLE, column, pk)).decode() if blob else ""


def _update(cursor, columns, types, values):
    """Set `columns` of the rows in `values` (id first), copied in through a temporary table."""
    cursor.execute(
        "CREATE TEMPORARY TABLE contact_batch "
        f"(id uuid, {', '.join(f'{c} {t}' for c, t in zip(columns, types, strict=True))}) "
        "ON COMMIT DROP"
    )
    with cursor.copy(f"COPY contact_batch (id, {', '.join(columns)}) FROM STDIN") as copy:
        for row in values:
            copy.write_row(row)
    cursor.execute(
        f"UPDATE {TABLE} AS c SET {', '.join(f'{c} = v.{c}' for c in columns)} "
        "FROM contact_batch AS v WHERE c.id = v.id"
    )
    cursor.execute("DROP TABLE contact_batch")


def _batches(connection, select, batch_size):
    """Run `select` (rows after %s, limit %s, id first) batch by batch; yield (cursor, rows)."""
    last, done = uuid.UUID(int=0), 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(select, [last, batch_size])
            rows = cursor.fetchall()
            if not rows:
                return
            yield cursor, rows
        last = rows[-1][0]
        if (done + len(rows)) // REPORT_EVERY > done // REPORT_EVERY:
            sys.stdout.write(f"\n    {done + len(rows):,} customers…")
            sys.stdout.flush()
        done += len(rows)


def encrypt_rows(connection, *, only_missing=False, batch_size=BATCH_SIZE):
    """Fill the ciphertext and blind-index columns from the plaintext ones."""
    condition = f"AND {NOT_YET_ENCRYPTED}" if only_missing else ""
    select = (
        f"SELECT id, email, phone, birthday, street, search_text FROM {TABLE} "
        f"WHERE id > %s {condition} ORDER BY id LIMIT %s FOR UPDATE"
    )
    for cursor, rows in _batches(connection, select, batch_size):
        values = []
        for pk, email, phone, birthday, street, search_text in rows:
            birthday, row = birthday.isoformat() if birthday else "", str(pk)
            values.append((
                pk,
                _seal("email", email, row),
                _seal("phone", phone, row),
                _seal("birthday", birthday, row),
                _seal("street", street, row),
                crypto.blind_index(email, "email") if email else None,
                crypto.blind_index(phone, "phone") if phone else None,
                crypto.blind_index(phone[-4:], "phone_last4") if phone else None,
                without_email(search_text, email),
            ))
        _update(
            cursor,
            [f"encrypted_{c}" for c in COLUMNS] + [*INDEX_COLUMNS, "search_text"],
            ["bytea"] * (len(COLUMNS) + len(INDEX_COLUMNS)) + ["text"],
            values,
        )


def decrypt_rows(connection, *, batch_size=BATCH_SIZE):
    """Fill the plaintext columns (and the email in search_text) from the ciphertext ones."""
    select = (
        f"SELECT id, encrypted_email, encrypted_phone, encrypted_birthday, encrypted_street, "
        f"search_text FROM {TABLE} WHERE id > %s ORDER BY id LIMIT %s FOR UPDATE"
    )
    for cursor, rows in _batches(connection, select, batch_size):
        values = []
        for pk, email, phone, birthday, street, search_text in rows:
            email = _open("email", email, pk)
            values.append((
                pk,
                email,
                _open("phone", phone, pk),
                _open("birthday", birthday, pk) or None,
                _open("street", street, pk),
                with_email(search_text, email),
            ))
        _update(
            cursor,
            [*COLUMNS, "search_text"],
            ["text", "text", "date", "text", "text"],
            values,
        )
