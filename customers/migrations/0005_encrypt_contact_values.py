# Encrypt every customer's phone, email, birthday and street into the columns 0004 added, fill
# the blind indexes and take the email out of search_text. Not atomic: each batch of 5,000 rows
# commits on its own, so a million customers neither sit in one transaction nor in memory, and
# an interrupted run simply starts again (re-encrypting from the untouched plaintext). Keys are
# read through cims.crypto, so FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY must be set (or, in
# development, the key file under var/keys/ is created).

from django.db import migrations

from customers.migrations import _contact_encryption


def encrypt(apps, schema_editor):
    _contact_encryption.encrypt_rows(schema_editor.connection)


def decrypt(apps, schema_editor):
    _contact_encryption.decrypt_rows(schema_editor.connection)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('customers', '0004_contact_ciphertext_and_index_columns'),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt, elidable=False),
    ]
