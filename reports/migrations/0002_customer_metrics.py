"""Customer metrics: one row per customer, its order figures kept current by triggers.

Statement-level triggers with transition tables keep each customer's number of orders, revenue
and first and last order time current, whatever writes the orders (the ORM, COPY, a merge, a
cascade): a statement changing 10,000 orders updates the metrics once, set-based. Rows are
written in customer id order, so two transactions never lock the same rows in opposite orders.
Another trigger gives every new customer its row, so the customer list can sort on the metrics
through an inner join and an index. A row whose order figures change loses its refreshed_at:
the next refresh recomputes its lifetime value (reports.metrics).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models.functions import Coalesce

import cims.ids

TRIGGERS = """
ALTER TABLE reports_customermetrics SET (fillfactor = 90);

CREATE FUNCTION reports_metrics_add_customers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reports_customermetrics (customer_id, orders, revenue)
    SELECT id, 0, 0 FROM new_customers
    ON CONFLICT (customer_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER reports_metrics_customer_insert
AFTER INSERT ON customers_customer REFERENCING NEW TABLE AS new_customers
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_add_customers();

-- New orders add to their customers' figures: no other order needs reading.
CREATE FUNCTION reports_metrics_add_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reports_customermetrics AS m
        (customer_id, orders, revenue, first_order_at, last_order_at)
    SELECT customer_id, count(*), sum(amount), min(ordered_at), max(ordered_at)
    FROM new_orders GROUP BY customer_id ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        orders = m.orders + EXCLUDED.orders,
        revenue = m.revenue + EXCLUDED.revenue,
        first_order_at = LEAST(m.first_order_at, EXCLUDED.first_order_at),
        last_order_at = GREATEST(m.last_order_at, EXCLUDED.last_order_at),
        refreshed_at = NULL;
    RETURN NULL;
END $$;

-- Changed and deleted orders: the customers' figures are counted again from their orders
-- (an index range each), after their rows are locked in id order. Counting in a statement of
-- its own, after the locks, sees every order committed while it waited for them.
CREATE FUNCTION reports_recount_order_metrics(customer_ids uuid[]) RETURNS void
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

CREATE FUNCTION reports_metrics_change_orders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    -- Only orders whose customer, amount or time changed (not, say, their lines), and both
    -- customers of an order moved from one to another.
    SELECT array_agg(DISTINCT x.customer_id ORDER BY x.customer_id) INTO ids FROM (
        SELECT unnest(ARRAY[o.customer_id, n.customer_id]) AS customer_id
        FROM old_orders o JOIN new_orders n ON n.id = o.id
        WHERE (o.customer_id, o.amount, o.ordered_at)
            IS DISTINCT FROM (n.customer_id, n.amount, n.ordered_at)
    ) x;
    IF ids IS NOT NULL THEN
        PERFORM reports_recount_order_metrics(ids);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION reports_metrics_remove_orders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) INTO ids FROM old_orders;
    IF ids IS NOT NULL THEN
        PERFORM reports_recount_order_metrics(ids);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reports_metrics_order_insert
AFTER INSERT ON customers_order REFERENCING NEW TABLE AS new_orders
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_add_orders();

CREATE TRIGGER reports_metrics_order_update
AFTER UPDATE ON customers_order REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_change_orders();

CREATE TRIGGER reports_metrics_order_delete
AFTER DELETE ON customers_order REFERENCING OLD TABLE AS old_orders
FOR EACH STATEMENT EXECUTE FUNCTION reports_metrics_remove_orders();
"""

# The fill, with the scores, segments and lifetime values a refresh would give (the SQL of
# reports.metrics as of this migration), so that the first refresh has little to rewrite. The
# triggers above hold their tables' write locks until this migration commits: nothing written
# meanwhile is missed.
FILL = """
INSERT INTO reports_customermetrics
    (customer_id, orders, revenue, first_order_at, last_order_at, recency_score,
     frequency_score, monetary_score, segment, average_order_value, purchase_frequency,
     mean_interval_days, predicted_ltv, refreshed_at)
WITH totals AS (
    SELECT c.id AS customer_id, COALESCE(a.n, 0) AS orders, COALESCE(a.total, 0) AS revenue,
           a.first AS first_order_at, a.last AS last_order_at
    FROM customers_customer c
    LEFT JOIN (
        SELECT customer_id, count(*) AS n, sum(amount) AS total, min(ordered_at) AS first,
               max(ordered_at) AS last
        FROM customers_order GROUP BY customer_id
    ) a ON a.customer_id = c.id
), by_recency AS (
    SELECT *, row_number() OVER recency AS rr, ntile(5) OVER recency AS r
    FROM totals WHERE orders > 0
    WINDOW recency AS (ORDER BY last_order_at, customer_id)
), ranked AS (
    SELECT *,
           ntile(5) OVER (ORDER BY orders, rr) AS f,
           ntile(5) OVER (ORDER BY revenue::float8, rr) AS m,
           extract(epoch FROM last_order_at - first_order_at)::float8 / 86400 AS span_days
    FROM by_recency
), valued AS (
    SELECT *, orders * 365.25 / GREATEST(span_days, 365.25) AS frequency FROM ranked
)
SELECT customer_id, orders, revenue, first_order_at, last_order_at, r, f, m,
       CASE
           WHEN orders = 1 AND r >= 4 THEN 'new'
           WHEN r >= 4 AND f + m >= 8 THEN 'champions'
           WHEN r >= 3 AND f + m >= 6 THEN 'loyal'
           WHEN r >= 3 THEN 'potential'
           WHEN f + m >= 6 THEN 'at_risk'
           WHEN r = 2 THEN 'hibernating'
           ELSE 'lost'
       END,
       round(revenue / orders, 2), frequency,
       CASE WHEN orders > 1 THEN span_days / (orders - 1) END,
       round(revenue / orders * frequency::numeric * %s, 2), now()
FROM valued
UNION ALL
SELECT customer_id, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM totals WHERE orders = 0
ON CONFLICT (customer_id) DO NOTHING;
"""


def fill(apps, schema_editor):
    from decimal import Decimal

    years = Decimal(str(getattr(settings, "ANALYTICS_EXPECTED_LIFETIME_YEARS", 3)))
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(FILL, [years])
        cursor.execute("ANALYZE reports_customermetrics")


DROP_TRIGGERS = """
DROP TRIGGER reports_metrics_order_delete ON customers_order;
DROP TRIGGER reports_metrics_order_update ON customers_order;
DROP TRIGGER reports_metrics_order_insert ON customers_order;
DROP TRIGGER reports_metrics_customer_insert ON customers_customer;
DROP FUNCTION reports_metrics_remove_orders();
DROP FUNCTION reports_metrics_change_orders();
DROP FUNCTION reports_recount_order_metrics(uuid[]);
DROP FUNCTION reports_metrics_add_orders();
DROP FUNCTION reports_metrics_add_customers();
DELETE FROM reports_customermetrics;
"""


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("accounts", "0007_audit_actions_for_forms_imports_and_merges"),
        ("customers", "0010_duplicate_candidates_and_merges"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CustomerMetrics",
            fields=[
                (
                    "customer",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DB_CASCADE,
                        primary_key=True,
                        related_name="metrics",
                        serialize=False,
                        to="customers.customer",
                        verbose_name="customer",
                    ),
                ),
                ("orders", models.PositiveIntegerField(default=0, verbose_name="orders")),
                (
                    "revenue",
                    models.DecimalField(
                        decimal_places=2, default=0, max_digits=16, verbose_name="revenue"
                    ),
                ),
                ("first_order_at", models.DateTimeField(null=True, verbose_name="first order")),
                ("last_order_at", models.DateTimeField(null=True, verbose_name="last order")),
                (
                    "recency_score",
                    models.PositiveSmallIntegerField(null=True, verbose_name="recency score"),
                ),
                (
                    "frequency_score",
                    models.PositiveSmallIntegerField(null=True, verbose_name="frequency score"),
                ),
                (
                    "monetary_score",
                    models.PositiveSmallIntegerField(null=True, verbose_name="monetary score"),
                ),
                (
                    "segment",
                    models.CharField(
                        choices=[
                            ("champions", "Champions"),
                            ("loyal", "Loyal"),
                            ("potential", "Potential loyalists"),
                            ("new", "New customers"),
                            ("at_risk", "At risk"),
                            ("hibernating", "Hibernating"),
                            ("lost", "Lost"),
                        ],
                        max_length=20,
                        null=True,
                        verbose_name="segment",
                    ),
                ),
                (
                    "average_order_value",
                    models.DecimalField(
                        decimal_places=2,
                        max_digits=16,
                        null=True,
                        verbose_name="average order value",
                    ),
                ),
                (
                    "purchase_frequency",
                    models.FloatField(null=True, verbose_name="purchase frequency"),
                ),
                (
                    "mean_interval_days",
                    models.FloatField(null=True, verbose_name="mean days between purchases"),
                ),
                (
                    "predicted_ltv",
                    models.DecimalField(
                        decimal_places=2,
                        max_digits=16,
                        null=True,
                        verbose_name="predicted lifetime value",
                    ),
                ),
                ("refreshed_at", models.DateTimeField(null=True, verbose_name="refreshed at")),
            ],
            options={
                "verbose_name": "customer metrics",
                "verbose_name_plural": "customer metrics",
                "permissions": [("refresh_metrics", "Can refresh customer analytics")],
                "indexes": [
                    models.Index(
                        Coalesce(
                            "predicted_ltv", models.Value(0), output_field=models.DecimalField()
                        ),
                        models.F("customer"),
                        name="metrics_ltv_idx",
                    ),
                    models.Index(fields=["revenue", "customer"], name="metrics_revenue_idx"),
                    models.Index(
                        Coalesce(
                            "last_order_at",
                            models.Value("1970-01-01T00:00:00Z"),
                            output_field=models.DateTimeField(),
                        ),
                        models.F("customer"),
                        name="metrics_last_order_idx",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("recency_score__range", (1, 5)),
                                ("frequency_score__range", (1, 5)),
                                ("monetary_score__range", (1, 5)),
                            ),
                            models.Q(
                                ("frequency_score__isnull", True),
                                ("recency_score__isnull", True),
                                ("monetary_score__isnull", True),
                            ),
                            _connector="OR",
                        ),
                        name="metrics_scores_1_to_5",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="MetricsRefresh",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=cims.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "Waiting to start"),
                            ("running", "Running"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("progress", models.PositiveSmallIntegerField(default=0)),
                ("customers", models.PositiveIntegerField(default=0)),
                ("changed", models.PositiveIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("expected_lifetime_years", models.FloatField(null=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.DB_SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "analytics refresh",
                "verbose_name_plural": "analytics refreshes",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["state", "-created_at"], name="metricsrefresh_state_idx")
                ],
            },
        ),
        migrations.RunSQL(TRIGGERS, DROP_TRIGGERS),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=False),
    ]
