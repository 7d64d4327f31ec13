"""Interactions and orders partitioned by month, and order numbers kept unique beside them.

customers_interaction (by occurred_at) and customers_order (by ordered_at) become tables
partitioned by month of settings.TIME_ZONE, every row moved (customers/migrations/_partitioning.py).
Their primary keys become (id, occurred_at) and (id, ordered_at) in the database, as PostgreSQL
requires of a partitioned table; Django's state keeps `id` as the primary key (ids are uuid7 and
unique by themselves), so nothing in the code changes.

A partitioned table's unique indexes must contain the partition column, so the order numbers'
uniqueness moves to customers_ordernumber: one row per order, live or archived, kept by triggers
on both tables, under the constraint name the orders had (order_unique_external_id).
"""

from django.conf import settings
from django.db import migrations, models

from customers.migrations import _partitioning

HISTORY = (("customers_interaction", "occurred_at"), ("customers_order", "ordered_at"))


def partition(apps, schema_editor):
    months_ahead = getattr(settings, "PARTITION_MONTHS_AHEAD", 3)
    with schema_editor.connection.cursor() as cursor:
        for table, column in HISTORY:
            _partitioning.to_partitioned(
                cursor, table, column, time_zone=settings.TIME_ZONE, months_ahead=months_ahead
            )


def unpartition(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table, _column in HISTORY:
            _partitioning.to_plain(cursor, table)


# Row triggers on the partitioned table (PostgreSQL gives every partition a copy). An UPDATE that
# moves an order to another month's partition runs as a DELETE and an INSERT: their triggers
# fire, in that order. An order leaving the live table for the archive, or coming back, keeps
# its number: a row is removed only when the order is in neither table.
ORDER_NUMBER_TRIGGERS = """
CREATE FUNCTION customers_order_number_live() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customers_ordernumber (order_id, source_system, external_id)
        VALUES (NEW.id, NEW.source_system, NEW.external_id)
        ON CONFLICT (order_id) DO UPDATE
        SET source_system = EXCLUDED.source_system, external_id = EXCLUDED.external_id;
    ELSIF TG_OP = 'UPDATE' THEN
        IF (OLD.id, OLD.source_system, OLD.external_id)
                IS DISTINCT FROM (NEW.id, NEW.source_system, NEW.external_id) THEN
            DELETE FROM customers_ordernumber WHERE order_id = OLD.id;
            INSERT INTO customers_ordernumber (order_id, source_system, external_id)
            VALUES (NEW.id, NEW.source_system, NEW.external_id);
        END IF;
    ELSE
        DELETE FROM customers_ordernumber n WHERE n.order_id = OLD.id
        AND NOT EXISTS (SELECT 1 FROM customers_archivedorder a WHERE a.id = OLD.id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_order_number
AFTER INSERT OR UPDATE OR DELETE ON customers_order
FOR EACH ROW EXECUTE FUNCTION customers_order_number_live();

CREATE FUNCTION customers_order_number_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM customers_ordernumber n USING old_rows o WHERE n.order_id = o.id
        AND NOT EXISTS (
            SELECT 1 FROM customers_order l WHERE l.id = o.id AND l.ordered_at = o.ordered_at
        );
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO customers_ordernumber (order_id, source_system, external_id)
        SELECT id, source_system, external_id FROM new_rows ORDER BY id
        ON CONFLICT (order_id) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

-- Months moved here by archiving (customers.partitions sets cims.moving_history) keep the
-- numbers their orders had in the live table.
CREATE TRIGGER customers_archived_order_number_insert
AFTER INSERT ON customers_archivedorder REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT
WHEN (current_setting('cims.moving_history', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION customers_order_number_archived();

CREATE TRIGGER customers_archived_order_number_update
AFTER UPDATE ON customers_archivedorder REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION customers_order_number_archived();

CREATE TRIGGER customers_archived_order_number_delete
AFTER DELETE ON customers_archivedorder REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION customers_order_number_archived();

INSERT INTO customers_ordernumber (order_id, source_system, external_id)
SELECT id, source_system, external_id FROM customers_order
UNION ALL
SELECT id, source_system, external_id FROM customers_archivedorder a
WHERE NOT EXISTS (SELECT 1 FROM customers_order o WHERE o.id = a.id);
"""

DROP_ORDER_NUMBER_TRIGGERS = """
DROP TRIGGER customers_archived_order_number_delete ON customers_archivedorder;
DROP TRIGGER customers_archived_order_number_update ON customers_archivedorder;
DROP TRIGGER customers_archived_order_number_insert ON customers_archivedorder;
DROP FUNCTION customers_order_number_archived();
DROP TRIGGER customers_order_number ON customers_order;
DROP FUNCTION customers_order_number_live();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0020_default_retention_rules"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="order", name="order_unique_external_id"),
        migrations.CreateModel(
            name="OrderNumber",
            fields=[
                ("order_id", models.UUIDField(primary_key=True, serialize=False)),
                ("source_system", models.CharField(max_length=50)),
                ("external_id", models.CharField(max_length=100)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("source_system", "external_id"), name="order_unique_external_id"
                    )
                ],
            },
        ),
        migrations.RunPython(partition, unpartition),
        migrations.RunSQL(ORDER_NUMBER_TRIGGERS, DROP_ORDER_NUMBER_TRIGGERS),
    ]
