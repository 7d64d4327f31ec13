"""Personal details of audit entries, sealed under a key of their own for each customer.

An entry about a customer (one with a customer_id) would otherwise keep what the customer was
called, what was changed and from which address a form was sent, in clear, for as long as the
trail is kept; and the trail can neither be changed nor have entries deleted, or its hash chain
breaks. So `record` seals those details (object_repr and data, and the client address when no
user was signed in) with AES-256-GCM under a random key for that customer and stores only the
ciphertext; the chain is hashed over what is stored. Erasing the customer deletes the key
("crypto-shredding"): the entries stay, with their action, time, user and customer id, their
hashes still verify, and what they said about the person can no longer be read by anyone.

The customer keys are themselves encrypted under the field keyring (cims.crypto), so a copy
of the database alone opens nothing. Reading entries opens them in batches (one query for the
keys of a batch); entries whose key is gone come back with empty details and `erased` set.
"""

import base64
import json
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connections, models, transaction
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from cims import crypto

# The columns an entry about a customer keeps sealed.
SEALED_COLUMNS = ("object_repr", "ip", "data")
SEALED_KEY = "sealed"
TOKEN_PREFIX = "v1."
NONCE_SIZE = 12


class AuditSubjectKey(models.Model):
    """The key that seals the personal details of one customer's audit entries."""

    customer_id = models.UUIDField(primary_key=True)
    # The 32-byte key, encrypted under the field keyring and bound to this row.
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name = _("audit key of a customer")
        verbose_name_plural = _("audit keys of customers")

    def __str__(self):
        return str(self.customer_id)


def _aad(customer_id):
    return crypto.row_aad(AuditSubjectKey._meta.db_table, "wrapped_key", customer_id)


def _entry_aad(customer_id):
    return f"accounts_auditentry.sealed.{customer_id}".encode()


def subject_key(customer_id, using="default"):
    """The customer's key, made on first use (inside the caller's transaction)."""
    customer_id = uuid.UUID(str(customer_id))
    table = AuditSubjectKey._meta.db_table
    wrapped = crypto.encrypt(os.urandom(32), _aad(customer_id))
    # One round trip: the new key, or the stored one. A key made by a transaction that had not
    # committed when this statement started is not in its snapshot: read again after it.
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"WITH made AS (INSERT INTO {table} (customer_id, wrapped_key) VALUES (%s, %s) "
            "ON CONFLICT (customer_id) DO NOTHING RETURNING wrapped_key) "
            f"SELECT wrapped_key FROM made UNION ALL "
            f"SELECT wrapped_key FROM {table} WHERE customer_id = %s LIMIT 1",
            [customer_id, wrapped, customer_id],
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute(f"SELECT wrapped_key FROM {table} WHERE customer_id = %s", [customer_id])
            row = cursor.fetchone()
    return crypto.decrypt(row[0], _aad(customer_id))


def subject_keys(customer_ids, using="default"):
    """{customer id: key} for many customers, made where missing: two round trips in all."""
    ids = sorted({uuid.UUID(str(pk)) for pk in customer_ids})
    if not ids:
        return {}
    table = AuditSubjectKey._meta.db_table
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id FROM {table} WHERE customer_id = ANY(%s::uuid[])", [ids]
        )
        have = {row[0] for row in cursor.fetchall()}
        missing = [pk for pk in ids if pk not in have]
        if missing:
            cursor.execute(
                f"INSERT INTO {table} (customer_id, wrapped_key) "
                "SELECT * FROM unnest(%s::uuid[], %s::bytea[]) "
                "ON CONFLICT (customer_id) DO NOTHING",
                [missing, [crypto.encrypt(os.urandom(32), _aad(pk)) for pk in missing]],
            )
        cursor.execute(
            f"SELECT customer_id, wrapped_key FROM {table} WHERE customer_id = ANY(%s::uuid[])",
            [ids],
        )
        return {pk: crypto.decrypt(bytes(wrapped), _aad(pk)) for pk, wrapped in cursor.fetchall()}


def seal(entry, using="default", key=None):
    """Replace the entry's personal columns with one ciphertext in `data`; returns them.

    The client address is the customer's own when nobody was signed in (a public form) and is
    sealed then; a user's address stays in clear, for the security of the accounts.
    """
    names = SEALED_COLUMNS if entry.actor_id is None else ("object_repr", "data")
    details = {name: getattr(entry, name) for name in names}
    key = key or subject_key(entry.customer_id, using)
    nonce = os.urandom(NONCE_SIZE)
    plaintext = json.dumps(details, ensure_ascii=False, sort_keys=True).encode()
    blob = nonce + AESGCM(key).encrypt(nonce, plaintext, _entry_aad(entry.customer_id))
    entry.object_repr = ""
    if "ip" in details:
        entry.ip = None
    entry.data = {SEALED_KEY: TOKEN_PREFIX + base64.b64encode(blob).decode()}
    return details


def is_sealed(data):
    return isinstance(data, dict) and set(data) == {SEALED_KEY}


def open_entries(entries, using="default"):
    """Open the sealed entries among `entries` in place, with one query for their keys.

    The stored columns are kept in `entry.stored_columns`, which the hash is computed over.
    """
    sealed = [e for e in entries if e.customer_id and is_sealed(e.data)]
    if not sealed:
        return
    wrapped = dict(
        AuditSubjectKey.objects.using(using)
        .filter(customer_id__in={e.customer_id for e in sealed})
        .values_list("customer_id", "wrapped_key")
    )
    keys = {}
    for entry in sealed:
        entry.stored_columns = {name: getattr(entry, name) for name in SEALED_COLUMNS}
        details = None
        if entry.customer_id in wrapped:
            if entry.customer_id not in keys:
                keys[entry.customer_id] = crypto.decrypt(
                    wrapped[entry.customer_id], _aad(entry.customer_id)
                )
            details = _open(entry, keys[entry.customer_id])
        entry.erased = details is None
        for name, value in (details or {"object_repr": "", "data": {}}).items():
            setattr(entry, name, value)


def _open(entry, key):
    try:
        blob = base64.b64decode(entry.data[SEALED_KEY].removeprefix(TOKEN_PREFIX))
        plaintext = AESGCM(key).decrypt(
            blob[:NONCE_SIZE], blob[NONCE_SIZE:], _entry_aad(entry.customer_id)
        )
    except (ValueError, InvalidTag):
        return None
    return json.loads(plaintext)


def forget(customer_ids, using="default"):
    """Delete the keys of these customers: their entries' details become unreadable for good."""
    deleted, _counts = (
        AuditSubjectKey.objects.using(using).filter(customer_id__in=list(customer_ids)).delete()
    )
    return deleted


def outdated_key_count():
    """How many customer keys are wrapped under an older field key than the newest."""
    return (
        AuditSubjectKey.objects.annotate(version=_KeyVersion("wrapped_key"))
        .exclude(version=crypto.current_version())
        .count()
    )


def rewrap_keys(*, batch_size=1000):
    """Wrap every customer key under the newest field key (part of `rotate_keys`), in batches
    of their own transactions; returns how many were re-wrapped."""
    current, total = crypto.current_version(), 0
    while True:
        with transaction.atomic():
            rows = list(
                AuditSubjectKey.objects.annotate(version=_KeyVersion("wrapped_key"))
                .exclude(version=current)
                .select_for_update(skip_locked=True)
                .values_list("customer_id", "wrapped_key")[:batch_size]
            )
            for customer_id, wrapped in rows:
                key = crypto.decrypt(wrapped, _aad(customer_id))
                AuditSubjectKey.objects.filter(customer_id=customer_id).update(
                    wrapped_key=crypto.encrypt(key, _aad(customer_id))
                )
        total += len(rows)
        if len(rows) < batch_size:
            return total


class _KeyVersion(models.Func):
    """The key version byte of a ciphertext (cims.crypto's format)."""

    template = "get_byte(%(expressions)s, 1)"
    output_field = models.IntegerField()
