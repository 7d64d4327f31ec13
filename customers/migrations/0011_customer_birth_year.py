# The year of each customer's birthday, in plain text, for age bands in lists and analyses (the
# birthday stays encrypted). The fill decrypts the birthdays in batches of 5,000 rows, each
# committed on its own (not atomic), so an interrupted run simply starts again. Keys are read
# through cims.crypto, as for migration 0005.

from django.db import migrations, models

from cims import crypto

BATCH_SIZE = 5000
TABLE = "customers_customer"


def fill_birth_years(apps, schema_editor):
    connection = schema_editor.connection
    last = None
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, birthday FROM {TABLE} WHERE birthday IS NOT NULL "
                "AND birth_year IS NULL AND (%s::uuid IS NULL OR id > %s::uuid) "
                "ORDER BY id LIMIT %s",
                [last, last, BATCH_SIZE],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            ids, years = [], []
            for pk, blob in rows:
                try:
                    plaintext = crypto.decrypt(blob, crypto.row_aad(TABLE, "birthday", pk))
                except crypto.DecryptionError:
                    continue  # unreadable: shown empty, so no year either
                ids.append(pk)
                years.append(int(plaintext[:4]))
            cursor.execute(
                f"UPDATE {TABLE} c SET birth_year = v.year "
                "FROM unnest(%s::uuid[], %s::smallint[]) v(id, year) WHERE c.id = v.id",
                [ids, years],
            )
        last = rows[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("customers", "0010_duplicate_candidates_and_merges"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="birth_year",
            field=models.PositiveSmallIntegerField(
                editable=False, null=True, verbose_name="year of birth"
            ),
        ),
        migrations.RunPython(fill_birth_years, migrations.RunPython.noop, elidable=False),
    ]
