"""Fill Customer.consented_purposes for the customers who have consent records.

Setting the column to NULL makes the row trigger compute it; customers without any record keep
the empty array the column was added with. Reversing leaves the column to be dropped.
"""

from django.db import migrations

FILL = """
UPDATE customers_customer SET consented_purposes = NULL
WHERE id IN (SELECT DISTINCT customer_id FROM customers_consent)
"""


class Migration(migrations.Migration):
    dependencies = [("customers", "0015_consented_purposes_triggers")]

    operations = [migrations.RunSQL(FILL, migrations.RunSQL.noop)]
