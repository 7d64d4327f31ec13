# Columns for encrypting phone, email, birthday and street at rest (customers.fields): the
# ciphertexts under temporary names beside the plaintext, which 0005 fills and 0006 drops, and
# the blind indexes that exact search and the unique constraints use from now on.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0003_sharing_and_role_permissions'),
    ]

    operations = [
        migrations.AddField(
            model_name='customer',
            name='encrypted_birthday',
            field=models.BinaryField(null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='encrypted_email',
            field=models.BinaryField(null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='encrypted_phone',
            field=models.BinaryField(null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='encrypted_street',
            field=models.BinaryField(null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='email_index',
            field=models.BinaryField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='phone_index',
            field=models.BinaryField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='customer',
            name='phone_last4_index',
            field=models.BinaryField(editable=False, null=True),
        ),
    ]
