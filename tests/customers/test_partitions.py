import decimal
import json
import time

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.audit import Action, AuditEntry
from cims.ids import uuid7
from customers import partitions
from customers.migrations import _partitioning
from customers.models import (
    ArchivedInteraction,
    ArchivedOrder,
    Customer,
    Interaction,
    Order,
    OrderNumber,
)
from reports.models import CustomerMetrics, DashboardRevenue
from reports.models.summaries import rebuild_summaries

THIS_MONTH = partitions.month_of(timezone.now())


def moment(months, day=15):
    """Noon on `day` of the month `months` from this one (negative: before)."""
    month = partitions.add_months(THIS_MONTH, months)
    return partitions.month_start(month).replace(day=day, hour=12)


def order(customer, months, number, amount="100.00", **fields):
    return Order.objects.create(
        customer=customer,
        external_id=number,
        ordered_at=moment(months),
        amount=decimal.Decimal(amount),
        **fields,
    )


def interaction(customer, months, summary="call"):
    return Interaction.objects.create(
        customer=customer, kind="call", summary=summary, occurred_at=moment(months)
    )


def partition_of(model, pk):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk]
        )
        return cursor.fetchone()[0]


def relations(node):
    """The tables an EXPLAIN (FORMAT JSON) plan reads."""
    if "Relation Name" in node:
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from relations(child)


def checksum(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), md5(string_agg(t::text, '' ORDER BY id)) FROM {table} t")
        return cursor.fetchone()


def figures():
    """What the reports show of orders: dashboard revenue and every customer's metrics."""
    revenue = sorted(
        DashboardRevenue.objects.filter(orders__gt=0).values_list(
            "owner_id", "team_id", "day", "currency", "orders", "amount"
        )
    )
    metrics = sorted(
        CustomerMetrics.objects.values_list(
            "customer_id", "orders", "revenue", "first_order_at", "last_order_at"
        )
    )
    return revenue, metrics


@pytest.fixture
def history(customer):
    """Orders and interactions from 14 months ago to next month; the oldest two months have no
    partition of their own (made after the migration's first month) but sit in DEFAULT."""
    made = {"orders": [], "interactions": []}
    for months in (-14, -13, -12, -11, 0, 1):
        made["orders"].append(
            order(customer, months, f"A{months + 100}", amount=f"{months + 20}.50")
        )
        made["interactions"].append(interaction(customer, months, f"talk {months}"))
    return made


# --- The migration's conversion ------------------------------------------------------------------


def test_conversion_to_a_plain_table_and_back_keeps_every_row_and_trigger(history):
    tables = (("customers_order", "ordered_at"), ("customers_interaction", "occurred_at"))
    before = {table: checksum(table) for table, _column in tables}
    with connection.cursor() as cursor:
        # As in a migration, no foreign-key check is left pending from this transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customers_order'::regclass "
            "AND NOT tgisinternal"
        )
        triggers = cursor.fetchone()[0]
        for table, _column in tables:
            _partitioning.to_plain(cursor, table)
        assert {table: checksum(table) for table, _column in tables} == before
        for table, column in tables:
            _partitioning.to_partitioned(
                cursor, table, column, time_zone="Asia/Shanghai", months_ahead=2
            )
        assert {table: checksum(table) for table, _column in tables} == before
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customers_order'::regclass "
            "AND NOT tgisinternal"
        )
        assert cursor.fetchone()[0] == triggers == 7  # six of the reports, the order numbers
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'customers_order'")
        assert cursor.fetchone()[0] == "p"
    # Every month from the oldest row's got its partition, nothing is left in DEFAULT.
    assert partitions.monthly_partitions(partitions.ORDERS)[0] == partitions.add_months(
        THIS_MONTH, -14
    )
    assert checksum("customers_order_default")[0] == 0
    assert partition_of(Order, history["orders"][0].pk) == (
        f"customers_order_p{partitions.add_months(THIS_MONTH, -14):%Y%m}"
    )


def test_primary_key_in_the_database_includes_the_month_column(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'customers_order'::regclass AND contype = 'p'"
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, ordered_at)"
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'customers_interaction'::regclass AND contype = 'p'"
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, occurred_at)"


# --- Partitions ----------------------------------------------------------------------------------


def test_rows_land_in_their_months_partition_and_the_rest_in_default(history):
    now_order, next_order = history["orders"][4], history["orders"][5]
    assert partition_of(Order, now_order.pk) == f"customers_order_p{THIS_MONTH:%Y%m}"
    assert partition_of(Order, next_order.pk) == (
        f"customers_order_p{partitions.add_months(THIS_MONTH, 1):%Y%m}"
    )
    assert partition_of(Order, history["orders"][0].pk) == "customers_order_default"
    assert partition_of(Interaction, history["interactions"][4].pk) == (
        f"customers_interaction_p{THIS_MONTH:%Y%m}"
    )


def test_a_query_over_recent_months_scans_only_their_partitions(history):
    partitions.create_partitions(months_ahead=2, today=moment(-3))
    start = partitions.month_start(partitions.add_months(THIS_MONTH, -1))
    end = partitions.month_start(partitions.add_months(THIS_MONTH, 1))
    plan = json.loads(
        Order.objects.filter(ordered_at__gte=start, ordered_at__lt=end)
        .values("currency")
        .order_by()
        .explain(format="json")
    )
    scanned = set(relations(plan[0]["Plan"]))
    previous = partitions.add_months(THIS_MONTH, -1)
    assert scanned == {f"customers_order_p{previous:%Y%m}", f"customers_order_p{THIS_MONTH:%Y%m}"}


def test_rows_in_default_move_to_their_month_when_it_gets_a_partition(history, customer):
    before = figures()
    old = history["orders"][0]
    created = partitions.create_partitions(months_ahead=0, today=moment(-14))
    month = partitions.add_months(THIS_MONTH, -14)
    assert created["customers_order"] == [(month, 1)]
    assert created["customers_interaction"] == [(month, 1)]
    assert partition_of(Order, old.pk) == f"customers_order_p{month:%Y%m}"
    # Moving rows is neither a deletion nor a new order to the reports, and keeps the number.
    assert figures() == before
    assert OrderNumber.objects.filter(order_id=old.pk, external_id=old.external_id).exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        order(customer, 0, old.external_id)
    # Made already: nothing more to do.
    assert partitions.create_partitions(months_ahead=0, today=moment(-14)) == {
        "customers_interaction": [],
        "customers_order": [],
    }


def run_on_worker(task, **kwargs):
    """Send `task` to the worker and wait until it has run (results are not stored)."""
    from celery.worker import state

    done = state.total_count[task.name]
    task.delay(**kwargs)
    deadline = time.monotonic() + 60
    while state.total_count[task.name] == done or state.active_requests:
        assert time.monotonic() < deadline, f"{task.name} did not run"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_partitions_ahead_are_made_by_the_nightly_task_through_a_worker(celery_worker, customer):
    from customers.tasks import create_history_partitions

    far = order(customer, 7, "FAR-1")
    assert partition_of(Order, far.pk) == "customers_order_default"
    before = figures()
    run_on_worker(create_history_partitions, months_ahead=8)
    months = partitions.monthly_partitions(partitions.ORDERS)
    for ahead in range(9):
        assert partitions.add_months(THIS_MONTH, ahead) in months
    assert partition_of(Order, far.pk) == (
        f"customers_order_p{partitions.add_months(THIS_MONTH, 7):%Y%m}"
    )
    assert checksum("customers_order_default")[0] == 0
    assert figures() == before
    # Idempotent: a second run finds every partition there.
    run_on_worker(create_history_partitions, months_ahead=8)
    assert partitions.monthly_partitions(partitions.ORDERS) == months
    assert partition_of(Order, far.pk) == (
        f"customers_order_p{partitions.add_months(THIS_MONTH, 7):%Y%m}"
    )


def test_command_refuses_a_negative_number_of_months(db, english):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="between 0 and 120"):
        call_command("create_partitions", "--months-ahead", "-1")


# --- Order numbers -------------------------------------------------------------------------------


def test_duplicate_order_numbers_are_still_refused(customer):
    first = order(customer, 0, "N-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        order(customer, -1, "N-1")
    # Another source system may use the same number.
    order(customer, 0, "N-1", source_system="shop")
    # Renumbering onto a taken number is refused; a free one is taken.
    other = order(customer, 0, "N-2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=other.pk).update(external_id="N-1")
    Order.objects.filter(pk=other.pk).update(external_id="N-3")
    assert set(OrderNumber.objects.values_list("external_id", flat=True)) == {"N-1", "N-3"}
    # A move to another month's partition keeps the number; a deletion frees it.
    Order.objects.filter(pk=first.pk).update(ordered_at=moment(1))
    assert OrderNumber.objects.filter(order_id=first.pk).exists()
    first.delete()
    order(customer, 0, "N-1")


def test_an_archived_orders_number_stays_taken(history, customer, settings):
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    archived = ArchivedOrder.objects.order_by("ordered_at").first()
    with pytest.raises(IntegrityError), transaction.atomic():
        order(customer, 0, archived.external_id)
    # Deleting the archived order frees it.
    ArchivedOrder.objects.filter(pk=archived.pk).delete()
    order(customer, 0, archived.external_id)


# --- Archiving -----------------------------------------------------------------------------------


def test_archive_history_moves_exactly_the_old_months_and_keeps_the_figures(
    history, customer, settings
):
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    before = figures()
    orders_before = checksum("customers_order")[0]
    done = partitions.archive_history()
    moved = {(m.table, m.month, m.rows) for m in done}
    old = [partitions.add_months(THIS_MONTH, -14), partitions.add_months(THIS_MONTH, -13)]
    assert moved == {
        (table, month, 1) for table in ("customers_interaction", "customers_order") for month in old
    }
    assert sorted(ArchivedOrder.objects.values_list("external_id", flat=True)) == ["A86", "A87"]
    assert ArchivedInteraction.objects.count() == 2
    assert Order.objects.count() == orders_before - 2
    assert not Order.objects.filter(ordered_at__lt=partitions.month_start(old[1])).exists()
    # The month exactly at the limit stays live, and the archived months' partitions are gone.
    assert Order.objects.filter(external_id="A88").exists()
    assert not set(old) & set(partitions.monthly_partitions(partitions.ORDERS))
    # The reports count archived orders as before, and their rebuilds count them too.
    assert figures() == before
    rebuild_summaries()
    assert figures() == before
    # A customer's figures counted again (a live order changed) keep the archived ones.
    live = Order.objects.get(external_id="A100")
    Order.objects.filter(pk=live.pk).update(amount=live.amount + 1)
    metrics = CustomerMetrics.objects.get(customer=customer)
    assert metrics.orders == 6
    assert metrics.first_order_at == moment(-14)
    entries = AuditEntry.objects.filter(action=Action.HISTORY_ARCHIVE)
    assert entries.count() == 5  # four months and the run
    # Nothing left to archive: a second run moves nothing.
    assert partitions.archive_history() == []


def test_a_dry_run_changes_nothing_but_says_what_would_move(history, settings, english):
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    before = checksum("customers_order"), checksum("customers_interaction")
    months = partitions.monthly_partitions(partitions.ORDERS)
    call_command("archive_history", "--dry-run", stdout=(out := _Output()))
    assert (checksum("customers_order"), checksum("customers_interaction")) == before
    assert partitions.monthly_partitions(partitions.ORDERS) == months
    assert not ArchivedOrder.objects.exists()
    old = partitions.add_months(THIS_MONTH, -14)
    assert f"customers_order {old:%Y-%m}: 1 rows would move." in out.text
    entry = AuditEntry.objects.get(action=Action.HISTORY_ARCHIVE)
    assert entry.data["dry_run"] is True
    assert len(entry.data["months"]) == 4


def test_archiving_is_off_at_zero_months(history, settings, english):
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 0
    call_command("archive_history", stdout=(out := _Output()))
    assert "Archiving is off" in out.text
    assert not ArchivedOrder.objects.exists()


class _Output:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


# --- The customer's page -------------------------------------------------------------------------


def test_customer_page_shows_archived_history_marked_after_the_live(
    history, customer, staff_client, settings, english
):
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    entries, more = customer.timeline(limit=20)
    assert not more
    assert [e.archived for e in entries] == [False] * 8 + [True] * 4
    assert entries[-1].occurred == moment(-14)
    summary = customer.order_summary()
    assert summary["count"] == 6
    assert summary["first"] == moment(-14)
    response = staff_client.get(customer.get_absolute_url())
    page = response.content.decode()
    assert page.count('class="badge" title="Moved to the archive: kept, read-only"') == 4
    assert "talk -14" in page and "A86" in page
    # Paging reaches the archive through the same cursor.
    older, more = customer.timeline(before=(entries[5].occurred, entries[5].pk), limit=3)
    assert [e.occurred for e in older] == [e.occurred for e in entries[6:9]]
    assert more


# --- Customers with archived history merged or deleted ----------------------------------------


def figures_match_a_rebuild():
    kept = figures()
    rebuild_summaries()
    return figures()[0] == kept[0]


def test_a_merge_moves_archived_history_and_undoing_moves_it_back(
    history, customer, make_customer, staff2, teams, manager, settings
):
    from customers import merging

    other = make_customer("章伟", owner=staff2, team=teams[1])
    old = order(other, -20, "B-OLD", amount="7.00")
    interaction(other, -20, "old talk")
    order(other, 0, "B-NOW", amount="3.00")
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    assert ArchivedOrder.objects.filter(pk=old.pk, customer_id=other.pk).exists()
    survivor, merged = (Customer.objects.get(pk=pk) for pk in (customer.pk, other.pk))
    merge = merging.merge_customers(
        survivor=survivor, merged=merged, user=manager,
        survivor_version=survivor.version, merged_version=merged.version,
    )  # fmt: skip
    assert ArchivedOrder.objects.get(pk=old.pk).customer_id == customer.pk
    assert ArchivedInteraction.objects.get(summary="old talk").customer_id == customer.pk
    assert customer.order_summary()["count"] == 8
    metrics = CustomerMetrics.objects.get(customer=customer)
    assert (metrics.orders, metrics.first_order_at) == (8, moment(-20))
    # The archived order's revenue moved to the survivor's owner and team, as a rebuild says.
    assert figures_match_a_rebuild()
    merging.undo_merge(merge, user=manager)
    assert ArchivedOrder.objects.get(pk=old.pk).customer_id == other.pk
    assert CustomerMetrics.objects.get(customer=other).orders == 2
    assert CustomerMetrics.objects.get(customer=customer).orders == 6
    assert figures_match_a_rebuild()


def test_deleting_a_customer_deletes_its_archived_history_and_figures(
    history, customer, staff_client, make_customer, settings
):
    bystander = make_customer("李娜", owner=customer.owner, team=customer.team)
    order(bystander, -20, "C-OLD", amount="9.00")
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    assert ArchivedOrder.objects.filter(customer_id=customer.pk).count() == 2
    response = staff_client.post(f"/customers/{customer.pk}/delete/")
    assert response.status_code == 302
    assert not ArchivedOrder.objects.filter(customer_id=customer.pk).exists()
    assert not ArchivedInteraction.objects.filter(customer_id=customer.pk).exists()
    assert not OrderNumber.objects.filter(external_id__in=["A86", "A87"]).exists()
    # What is left of the dashboard is the bystander's archived order alone.
    assert [(row[4], row[5]) for row in figures()[0]] == [(1, decimal.Decimal("9.00"))]
    assert figures_match_a_rebuild()


def test_a_bulk_delete_deletes_the_customers_archived_history(history, customer, staff, settings):
    from customers.models import BulkAction

    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    bulk = BulkAction.objects.create(user=staff, action="delete", total=1)
    assert bulk.apply_to([customer.pk]) == 1
    assert not ArchivedOrder.objects.exists()
    assert not ArchivedInteraction.objects.exists()
    assert not figures()[0]
    assert figures_match_a_rebuild()


def test_partitions_made_after_a_change_of_time_zone_neither_overlap_nor_fail(db, settings):
    made = partitions.monthly_partitions(partitions.ORDERS)[-1]
    # Auckland's months begin hours before Shanghai's: the next month starts where the last
    # partition made with Shanghai's months ends.
    settings.TIME_ZONE = "Pacific/Auckland"
    created = partitions.create_partitions(months_ahead=0, today=moment(made_offset(made) + 1))
    new = partitions.add_months(made, 1)
    assert created["customers_order"] == [(new, 0)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname IN (%s, %s) "
            "ORDER BY relname",
            [f"customers_order_p{made:%Y%m}", f"customers_order_p{new:%Y%m}"],
        )
        (last,), (following,) = cursor.fetchall()
    assert last.split("TO ")[1] == following.split("FROM ")[1].split(" TO")[0]


def made_offset(month):
    return (month.year - THIS_MONTH.year) * 12 + month.month - THIS_MONTH.month


def test_a_customer_deleted_without_its_archive_stops_counting_its_archived_orders(
    history, customer, make_customer, settings
):
    bystander = make_customer("李娜", owner=customer.owner, team=customer.team)
    order(bystander, -20, "C-OLD", amount="9.00")
    settings.ARCHIVE_HISTORY_AFTER_MONTHS = 12
    partitions.archive_history()
    # As a customer's archiving elsewhere might: the archive stays, the customer goes.
    Customer.objects.filter(pk=customer.pk).delete()
    assert ArchivedOrder.objects.filter(customer_id=customer.pk).count() == 2
    assert [(row[4], row[5]) for row in figures()[0]] == [(1, decimal.Decimal("9.00"))]
    assert figures_match_a_rebuild()


def test_orders_put_into_the_archive_count_once_and_only_for_existing_customers(customer):
    before = figures()
    fields = {
        "source_system": "cims", "ordered_at": moment(-30), "amount": decimal.Decimal("5.00"),
        "currency": "CNY", "channel": "store", "created_at": moment(-30),
    }  # fmt: skip
    # As a customer's restore or archiving elsewhere might write them, one by one.
    ArchivedOrder.objects.create(id=uuid7(), customer_id=customer.pk, external_id="R-1", **fields)
    ArchivedOrder.objects.create(id=uuid7(), customer_id=uuid7(), external_id="R-2", **fields)
    metrics = CustomerMetrics.objects.get(customer=customer)
    assert (metrics.orders, metrics.revenue) == (1, decimal.Decimal("5.00"))
    assert figures() != before
    assert figures_match_a_rebuild()
    with pytest.raises(IntegrityError), transaction.atomic():
        order(customer, 0, "R-2")


def test_a_restored_database_gets_the_partitions_made_since_its_backup(db):
    from accounts.signals import database_restored

    month = partitions.add_months(THIS_MONTH, 2)
    with connection.cursor() as cursor:
        for history in (partitions.ORDERS, partitions.INTERACTIONS):
            name = f"{history.table}_p{month:%Y%m}"
            cursor.execute(f"ALTER TABLE {history.table} DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")
    assert month not in partitions.monthly_partitions(partitions.ORDERS)

    database_restored.send(sender=None, using="default")

    assert month in partitions.monthly_partitions(partitions.ORDERS)
    assert month in partitions.monthly_partitions(partitions.INTERACTIONS)
