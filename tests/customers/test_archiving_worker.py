"""The nightly archiving run, as beat schedules it, on a real Celery worker."""

import datetime
import time

from django.conf import settings
from django.utils import timezone

from accounts.audit import Action, AuditEntry
from cims.celery import app
from customers.models import ArchivedCustomer, ArchivedOrder, Customer, Order
from tests.conftest import make_user

LONG_AGO = timezone.now() - datetime.timedelta(days=3 * 365)


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("the worker did not archive in time")


def test_the_scheduled_task_archives_exactly_the_inactive_customers(celery_worker):
    owner = make_user("owner", role="Staff")
    quiet = [Customer.objects.create(display_name=f"安静{n}", owner=owner) for n in range(3)]
    busy = Customer.objects.create(display_name="活跃", owner=owner)
    edited = Customer.objects.create(display_name="改过", owner=owner)
    for customer in [*quiet, busy]:
        Order.objects.create(customer=customer, external_id=f"SO-{customer.pk}", amount="1.00")
    Customer.objects.exclude(pk=edited.pk).update(updated_at=LONG_AGO)
    Order.objects.exclude(customer=busy).update(ordered_at=LONG_AGO, created_at=LONG_AGO)
    Order.objects.filter(customer=busy).update(ordered_at=timezone.now() - datetime.timedelta(1))
    Order.objects.filter(customer=busy).update(created_at=LONG_AGO)

    entry = settings.CELERY_BEAT_SCHEDULE["archive-inactive-customers"]
    app.send_task(entry["task"])
    wait_until(lambda: ArchivedCustomer.objects.count() == 3)

    assert set(ArchivedCustomer.objects.values_list("pk", flat=True)) == {c.pk for c in quiet}
    assert set(Customer.objects.values_list("pk", flat=True)) == {busy.pk, edited.pk}
    assert ArchivedOrder.objects.count() == 3 and Order.objects.get().customer == busy
    assert AuditEntry.objects.filter(action=Action.CUSTOMER_ARCHIVE).count() == 3
    # A second run (a retry, or the next night) finds nothing more to do.
    app.send_task(entry["task"])
    time.sleep(2)
    assert ArchivedCustomer.objects.count() == 3 and Customer.objects.count() == 2
