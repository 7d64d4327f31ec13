"""Customer metrics and dashboard figures count archived orders too.

Archiving moves old months of orders to customers_archivedorder without firing the orders'
triggers, so the figures keep them. What counts a customer's orders again (after an order is
changed or deleted) and what moves a customer's revenue with them to another owner or team now
read the live and the archived orders together, so that neither drops the archived ones; and
the orders' triggers watch the archive too, so that an archived order deleted or moved to
another customer changes the figures as a live one does. Only the archiving of whole months
(which sets cims.moving_history) adds archived orders without counting them again.
"""

from django.db import migrations

from reports.models import summaries

RECOUNT = """
CREATE OR REPLACE FUNCTION reports_recount_order_metrics(customer_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM reports_customermetrics m JOIN unnest(customer_ids) i(id)
        ON m.customer_id = i.id
    ORDER BY m.customer_id FOR UPDATE OF m;
    INSERT INTO reports_customermetrics AS m
        (customer_id, orders, revenue, first_order_at, last_order_at)
    SELECT c.id, a.n, COALESCE(a.total, 0), a.first, a.last
    FROM customers_customer c
    JOIN unnest(customer_ids) i(id) ON c.id = i.id
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, sum(o.amount) AS total, min(o.ordered_at) AS first,
               max(o.ordered_at) AS last
        FROM (
            SELECT amount, ordered_at FROM customers_order WHERE customer_id = c.id
            UNION ALL
            SELECT amount, ordered_at FROM customers_archivedorder WHERE customer_id = c.id
        ) o
    ) a
    ORDER BY c.id
    ON CONFLICT (customer_id) DO UPDATE SET
        orders = EXCLUDED.orders,
        revenue = EXCLUDED.revenue,
        first_order_at = EXCLUDED.first_order_at,
        last_order_at = EXCLUDED.last_order_at,
        refreshed_at = NULL
    WHERE (m.orders, m.revenue, m.first_order_at, m.last_order_at) IS DISTINCT FROM
        (EXCLUDED.orders, EXCLUDED.revenue, EXCLUDED.first_order_at, EXCLUDED.last_order_at);
END $$;
"""

LIVE_ONLY_RECOUNT = """
CREATE OR REPLACE FUNCTION reports_recount_order_metrics(customer_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM reports_customermetrics m JOIN unnest(customer_ids) i(id)
        ON m.customer_id = i.id
    ORDER BY m.customer_id FOR UPDATE OF m;
    INSERT INTO reports_customermetrics AS m
        (customer_id, orders, revenue, first_order_at, last_order_at)
    SELECT c.id, a.n, COALESCE(a.total, 0), a.first, a.last
    FROM customers_customer c
    JOIN unnest(customer_ids) i(id) ON c.id = i.id
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, sum(o.amount) AS total, min(o.ordered_at) AS first,
               max(o.ordered_at) AS last
        FROM customers_order o WHERE o.customer_id = c.id
    ) a
    ORDER BY c.id
    ON CONFLICT (customer_id) DO UPDATE SET
        orders = EXCLUDED.orders,
        revenue = EXCLUDED.revenue,
        first_order_at = EXCLUDED.first_order_at,
        last_order_at = EXCLUDED.last_order_at,
        refreshed_at = NULL
    WHERE (m.orders, m.revenue, m.first_order_at, m.last_order_at) IS DISTINCT FROM
        (EXCLUDED.orders, EXCLUDED.revenue, EXCLUDED.first_order_at, EXCLUDED.last_order_at);
END $$;
"""


METRICS_TRIGGERS = f"""
-- As reports_metrics_add_orders, for the customers that exist: unlike a live order, an archived
-- one may name a customer that is gone (moved to an archive of customers, say).
CREATE FUNCTION reports_metrics_add_archived_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reports_customermetrics AS m
        (customer_id, orders, revenue, first_order_at, last_order_at)
    SELECT customer_id, count(*), sum(amount), min(ordered_at), max(ordered_at)
    FROM new_orders n
    WHERE EXISTS (SELECT 1 FROM customers_customer c WHERE c.id = n.customer_id)
    GROUP BY customer_id ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        orders = m.orders + EXCLUDED.orders,
        revenue = m.revenue + EXCLUDED.revenue,
        first_order_at = LEAST(m.first_order_at, EXCLUDED.first_order_at),
        last_order_at = GREATEST(m.last_order_at, EXCLUDED.last_order_at),
        refreshed_at = NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER reports_metrics_archivedorder_insert
AFTER INSERT ON customers_archivedorder REFERENCING NEW TABLE AS new_orders
FOR EACH STATEMENT WHEN ({summaries.MOVING_HISTORY})
EXECUTE FUNCTION reports_metrics_add_archived_orders();

CREATE TRIGGER reports_metrics_archivedorder_update
AFTER UPDATE ON customers_archivedorder
REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_change_orders();

CREATE TRIGGER reports_metrics_archivedorder_delete
AFTER DELETE ON customers_archivedorder REFERENCING OLD TABLE AS old_orders
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_remove_orders();
"""

DROP_METRICS_TRIGGERS = """
DROP TRIGGER reports_metrics_archivedorder_delete ON customers_archivedorder;
DROP TRIGGER reports_metrics_archivedorder_update ON customers_archivedorder;
DROP TRIGGER reports_metrics_archivedorder_insert ON customers_archivedorder;
DROP FUNCTION reports_metrics_add_archived_orders();
"""


def install_dashboard_triggers(apps, schema_editor):
    # The customers' update trigger moves archived orders' revenue with them from now on, and
    # the orders' triggers watch the archive.
    summaries.install_triggers(schema_editor.connection)


def uninstall_archive_dashboard_triggers(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in summaries.archive_drop_sql():
            cursor.execute(statement)
        for statement in summaries.trigger_sql(summaries.LIVE_ORDERS):
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0006_report_schedules"),
        ("customers", "0021_partition_history_by_month"),
    ]

    operations = [
        migrations.RunSQL(RECOUNT, LIVE_ONLY_RECOUNT),
        migrations.RunSQL(METRICS_TRIGGERS, DROP_METRICS_TRIGGERS),
        migrations.RunPython(install_dashboard_triggers, uninstall_archive_dashboard_triggers),
    ]
