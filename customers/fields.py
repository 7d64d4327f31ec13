"""Model fields whose values are encrypted at rest (cims.crypto), read and written as plaintext.

The column holds a ciphertext (bytea; NULL for an empty value) bound to its table, column and
row, so decrypting needs the row's primary key. A value read from the database is therefore kept
sealed on the instance and decrypted when the attribute is first read; a list that shows two of
four encrypted fields decrypts only those two. Saving encrypts with the instance's primary key,
which must be set before the row is inserted (a UUID default does that).

The database cannot compare plaintext, so filtering on these fields fails loudly, except with
`isnull` (isnull=True: no value). Exact matches go through blind-index columns instead.
"""

import datetime
import json
import logging

from django.core.exceptions import FieldError
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from cims import crypto

logger = logging.getLogger(__name__)


class Sealed:
    """A ciphertext read from the database, with the primary key of the row it was read from."""

    __slots__ = ("blob", "pk", "unreadable")

    def __init__(self, blob, pk=None):
        self.blob, self.pk, self.unreadable = blob, pk, False

    def __repr__(self):
        return f"<Sealed value, key version {self.blob[1]}>"

    __str__ = __repr__


class DecryptingAttribute(DeferredAttribute):
    """Decrypts the sealed value on first read and keeps the plaintext on the instance."""

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if type(value) is not Sealed:
            return value
        if value.unreadable:
            return self.field.empty_value
        try:
            plaintext = self.field.open(value.blob, instance.pk if value.pk is None else value.pk)
        except crypto.DecryptionError as error:
            # Shown as empty rather than failing the page; the row keeps its ciphertext unless
            # someone enters a new value. Unknown key versions (MissingKeyError) still raise.
            logger.error("Unreadable encrypted value: %s", error)
            value.unreadable = True
            return self.field.empty_value
        instance.__dict__[self.field.attname] = plaintext
        return plaintext

    def __set__(self, instance, value):
        if type(value) is Sealed and value.pk is None:
            # Rows are built with their primary key first, so it is already set here.
            value.pk = instance.__dict__.get(instance._meta.pk.attname)
        instance.__dict__[self.field.attname] = value


class EncryptedMixin:
    """Makes a Django field store its value encrypted. Subclasses define encode and decode."""

    descriptor_class = DecryptingAttribute
    empty_value = ""

    def __init__(self, *args, **kwargs):
        # An empty value is stored as NULL, so the column is always nullable.
        kwargs["null"] = True
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("null", None)
        return name, path, args, kwargs

    def get_internal_type(self):
        return "BinaryField"

    def get_default(self):
        return super().get_default() if self.has_default() else self.empty_value

    def aad(self, pk):
        # Rows moved whole out of their table (archived customers) keep their ciphertexts as
        # written: such a model names the table the values stay bound to.
        table = getattr(self.model, "encrypted_for_table", None) or self.model._meta.db_table
        return crypto.row_aad(table, self.column, pk)

    def seal(self, value, pk):
        """The ciphertext of `value` for the row `pk`, or None for an empty value."""
        value = self.to_python(value)
        if value in self.empty_values:
            return None
        return crypto.encrypt(self.encode(value), self.aad(pk))

    def open(self, blob, pk):
        """The plaintext of a ciphertext of row `pk`; DecryptionError if it is not from there."""
        return self.decode(crypto.decrypt(blob, self.aad(pk)))

    def untouched(self, instance):
        """Whether the instance has neither read nor set the value since loading the row."""
        data = instance.__dict__
        return self.attname not in data or type(data[self.attname]) is Sealed

    def is_unreadable(self, instance):
        """Whether the stored value fails to decrypt (it reads as empty)."""
        getattr(instance, self.attname)
        value = instance.__dict__.get(self.attname)
        return type(value) is Sealed and value.unreadable

    def from_db_value(self, value, expression, connection):
        return self.empty_value if value is None else Sealed(bytes(value))

    def pre_save(self, model_instance, add):
        value = model_instance.__dict__.get(self.attname)
        pk = model_instance.pk
        if pk is None:
            raise ValueError(
                f"{self.model.__name__}.{self.name} is encrypted for its row: set the primary "
                "key before saving."
            )
        if type(value) is Sealed:
            sealed, old_pk = value, pk if value.pk is None else value.pk
            if sealed.unreadable or (
                old_pk == pk and crypto.key_version(sealed.blob) == crypto.current_version()
            ):
                # Unchanged, or unreadable: kept where it was written, and nowhere else.
                return sealed.blob if old_pk == pk else None
            # Moved to another row, or written under an older key: encrypt it afresh.
            try:
                value = self.open(sealed.blob, old_pk)
            except crypto.DecryptionError as error:
                logger.error("Unreadable encrypted value: %s", error)
                sealed.unreadable = True
                return sealed.blob if old_pk == pk else None
        return self.seal(value, pk)

    def get_db_prep_value(self, value, connection, prepared=False):
        if type(value) is Sealed:
            return value.blob
        if value is None or isinstance(value, (bytes, memoryview)):
            return value
        if value in self.empty_values:
            return None
        raise TypeError(
            f"{self.model.__name__}.{self.name} is encrypted with its row's primary key: save it "
            "through save() or bulk_create(), not update() or bulk_update()."
        )

    def get_prep_value(self, value):
        return value

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        self._refuse(lookup_name)

    def get_transform(self, lookup_name):
        self._refuse(lookup_name)

    def _refuse(self, lookup_name):
        raise FieldError(
            f"{self.model.__name__}.{self.name} is encrypted, so the database cannot compare it "
            f"({self.name}__{lookup_name}). Filter on isnull only; find exact values through "
            "the blind indexes, e.g. Customer.objects.with_email() or with_phone()."
        )


class EncryptedTextMixin(EncryptedMixin):
    def encode(self, value):
        return value.encode()

    def decode(self, plaintext):
        return plaintext.decode()

    def formfield(self, **kwargs):
        # The column is nullable, but the form (and the model) use "" for no value.
        return super().formfield(**{"empty_value": "", **kwargs})


class EncryptedCharField(EncryptedTextMixin, models.CharField):
    pass


class EncryptedEmailField(EncryptedTextMixin, models.EmailField):
    pass


class EncryptedDateField(EncryptedMixin, models.DateField):
    empty_value = None

    def encode(self, value):
        return value.isoformat().encode()

    def decode(self, plaintext):
        return datetime.date.fromisoformat(plaintext.decode())


class EncryptedJSONField(EncryptedMixin, models.JSONField):
    """A JSON document (dicts, lists, strings, numbers) stored as one ciphertext."""

    @property
    def empty_value(self):
        return {}

    def encode(self, value):
        return json.dumps(value, ensure_ascii=False, cls=self.encoder).encode()

    def decode(self, plaintext):
        return json.loads(plaintext)


def encrypted_fields(model):
    return [f for f in model._meta.concrete_fields if isinstance(f, EncryptedMixin)]
