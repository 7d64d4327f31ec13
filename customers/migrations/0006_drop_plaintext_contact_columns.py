# Replace the plaintext phone, email, birthday and street by the ciphertexts 0005 wrote, and the
# constraints on them by constraints on the blind indexes. Writes are blocked for the length of
# this migration (reads are not), and rows the old code added while 0005 ran are encrypted first,
# so no plaintext is dropped before its ciphertext exists.

import customers.fields
from django.db import migrations, models

from customers.migrations import _contact_encryption


def encrypt_latecomers(apps, schema_editor):
    _contact_encryption.encrypt_rows(schema_editor.connection, only_missing=True)


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0005_encrypt_contact_values'),
    ]

    operations = [
        migrations.RunSQL(
            "LOCK TABLE customers_customer IN SHARE ROW EXCLUSIVE MODE",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunPython(encrypt_latecomers, migrations.RunPython.noop, elidable=False),
        migrations.RemoveConstraint(
            model_name='customer',
            name='customer_unique_email',
        ),
        migrations.RemoveConstraint(
            model_name='customer',
            name='customer_unique_phone',
        ),
        migrations.RemoveConstraint(
            model_name='customer',
            name='customer_email_lower_case',
        ),
        migrations.RemoveConstraint(
            model_name='customer',
            name='customer_phone_e164',
        ),
        migrations.RemoveIndex(
            model_name='customer',
            name='customer_phone_last4_idx',
        ),
        migrations.RemoveField(
            model_name='customer',
            name='birthday',
        ),
        migrations.RemoveField(
            model_name='customer',
            name='email',
        ),
        migrations.RemoveField(
            model_name='customer',
            name='phone',
        ),
        migrations.RemoveField(
            model_name='customer',
            name='street',
        ),
        migrations.RenameField(
            model_name='customer',
            old_name='encrypted_birthday',
            new_name='birthday',
        ),
        migrations.RenameField(
            model_name='customer',
            old_name='encrypted_email',
            new_name='email',
        ),
        migrations.RenameField(
            model_name='customer',
            old_name='encrypted_phone',
            new_name='phone',
        ),
        migrations.RenameField(
            model_name='customer',
            old_name='encrypted_street',
            new_name='street',
        ),
        migrations.AlterField(
            model_name='customer',
            name='birthday',
            field=customers.fields.EncryptedDateField(blank=True, verbose_name='birthday'),
        ),
        migrations.AlterField(
            model_name='customer',
            name='email',
            field=customers.fields.EncryptedEmailField(blank=True, max_length=254, verbose_name='email'),
        ),
        migrations.AlterField(
            model_name='customer',
            name='phone',
            field=customers.fields.EncryptedCharField(blank=True, help_text='Stored in E.164 form.', max_length=20, verbose_name='mobile phone'),
        ),
        migrations.AlterField(
            model_name='customer',
            name='street',
            field=customers.fields.EncryptedCharField(blank=True, max_length=200, verbose_name='street address'),
        ),
        migrations.AddConstraint(
            model_name='customer',
            constraint=models.UniqueConstraint(condition=models.Q(('email_index__isnull', False)), fields=('email_index',), name='customer_unique_email', violation_error_message='Another customer already has this email.'),
        ),
        migrations.AddConstraint(
            model_name='customer',
            constraint=models.UniqueConstraint(condition=models.Q(('phone_index__isnull', False)), fields=('phone_index',), name='customer_unique_phone', violation_error_message='Another customer already has this mobile number.'),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(condition=models.Q(('phone_last4_index__isnull', False)), fields=['phone_last4_index'], name='customer_phone_end_idx'),
        ),
    ]
