"""Imports run by the real Celery worker, through Redis."""

import time

from customers import tasks
from customers.models import Customer, CustomerImport
from tests.customers.import_helpers import csv_bytes, make_import, media  # noqa: F401 (fixture)

ROWS = [
    ["王芳", "13900139000", "wang@example.com", "", "星光", "", "", "", "", "C1"],
    ["李娜", "12345", "", "", "", "", "", "", "", "C2"],
]


def wait_for(job, state, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state == state:
            return job
        time.sleep(0.1)
    raise AssertionError(f"the import is {job.state}, not {state}: {job.error}")


def test_the_worker_checks_imports_and_reverts(celery_worker, manager):
    job = make_import(manager, csv_bytes(ROWS))
    CustomerImport.objects.filter(pk=job.pk).update(state="checking")
    tasks.check_customer_import.delay(str(job.pk))
    wait_for(job, "checked")
    assert (job.created, job.failed) == (1, 1)
    assert not Customer.objects.exists()

    CustomerImport.objects.filter(pk=job.pk).update(state="queued")
    tasks.run_customer_import.delay(str(job.pk))
    wait_for(job, "done")
    assert Customer.objects.get().external_id == "C1"
    # Delivered again (as after a lost acknowledgement): nothing is imported twice.
    tasks.run_customer_import.delay(str(job.pk))
    time.sleep(1)
    assert Customer.objects.count() == 1

    CustomerImport.objects.filter(pk=job.pk).update(state="reverting")
    tasks.revert_customer_import.delay(str(job.pk), manager.pk)
    wait_for(job, "reverted")
    assert not Customer.objects.exists()
