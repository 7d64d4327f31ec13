import datetime

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone, translation

from customers.models import BulkAction


@shared_task(bind=True, max_retries=5)
def run_bulk_action(self, bulk_id):
    """Apply a confirmed bulk action; safe to run again, it resumes after the last batch."""
    bulk = BulkAction.objects.select_related("user").filter(pk=bulk_id).first()
    if bulk is None or bulk.finished:
        return
    try:
        bulk.run()
    except DatabaseError as error:
        # A lost connection or a deadlock is worth another try; the batches done are kept.
        if self.request.retries < self.max_retries:
            raise self.retry(exc=error, countdown=2**self.request.retries) from error
        bulk.fail(error)
        raise
    except Exception as error:
        bulk.fail(error)
        raise


@shared_task
def purge_finished_bulk_actions(days=30):
    cutoff = timezone.now() - datetime.timedelta(days=days)
    BulkAction.objects.filter(finished_at__lt=cutoff).delete()


# --- Duplicate customers ---


@shared_task(bind=True, max_retries=3)
def refresh_duplicate_candidates(self, scan_id=None):
    """Find likely duplicates among all customers (nightly, or asked for on the finder's page).

    Safe to run again: a scan replaces the stored pairs as a whole.
    """
    from customers import duplicates
    from customers.models import DuplicateScan

    if scan_id is None:
        scan, created = duplicates.queued_or_new_scan()
        if not created:
            return  # the scan already waiting or running will do
    else:
        scan = DuplicateScan.objects.filter(pk=scan_id).first()
    if scan is None or scan.state == DuplicateScan.State.DONE:
        return
    try:
        duplicates.refresh_candidates(scan)
    except DatabaseError as error:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=error, countdown=2**self.request.retries) from error
        scan.fail(error)
        raise
    except Exception as error:
        scan.fail(error)
        raise


@shared_task
def clear_expired_merge_snapshots():
    from customers import merging

    merging.clear_expired_snapshots()


# --- Customer imports ---


def _import_task(self, import_id, states, work, language=None):
    """Load an import in one of `states` and do `work` with it; a lost connection is retried.

    Each step is one transaction (customers.imports), so a retry after a failure starts the
    step afresh, and a step that already finished is not done twice. Problems are written in
    `language`, the one the user had when they started the step.
    """
    from customers.models import CustomerImport

    job = CustomerImport.objects.select_related("user").filter(pk=import_id).first()
    if job is None or job.state not in states:
        return
    language = language or job.user.language or settings.LANGUAGE_CODE
    try:
        with translation.override(language):
            work(job)
    except DatabaseError as error:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=error, countdown=2**self.request.retries) from error
        _fail_import(job, error)
        raise
    except Exception as error:
        _fail_import(job, error)
        raise


def _fail_import(job, error):
    from customers.models import CustomerImport

    CustomerImport.objects.filter(pk=job.pk).update(
        state=CustomerImport.State.FAILED, error=str(error)[:1000], finished_at=timezone.now()
    )


@shared_task(bind=True, max_retries=5)
def check_customer_import(self, import_id, language=None):
    """Check an import (a run that is rolled back): its counts, problems and preview."""
    from customers import imports
    from customers.models import CustomerImport

    _import_task(
        self,
        import_id,
        [CustomerImport.State.CHECKING],
        lambda job: imports.execute(job, dry_run=True),
        language,
    )


@shared_task(bind=True, max_retries=5)
def run_customer_import(self, import_id, language=None):
    """Import the customers of a checked file; safe to deliver twice (see customers.imports)."""
    from customers import imports
    from customers.models import CustomerImport

    def work(job):
        CustomerImport.objects.filter(pk=job.pk, state=CustomerImport.State.QUEUED).update(
            state=CustomerImport.State.RUNNING
        )
        job.state = CustomerImport.State.RUNNING
        imports.execute(job, dry_run=False)

    states = [CustomerImport.State.QUEUED, CustomerImport.State.RUNNING]
    _import_task(self, import_id, states, work, language)


@shared_task(bind=True, max_retries=5)
def revert_customer_import(self, import_id, user_id, language=None):
    from django.contrib.auth import get_user_model

    from customers import imports
    from customers.models import CustomerImport

    user = get_user_model().objects.get(pk=user_id)
    _import_task(
        self,
        import_id,
        [CustomerImport.State.REVERTING],
        lambda job: imports.revert(job, user=user),
        language,
    )


@shared_task
def purge_import_files(days=None):
    """Delete uploaded files and error reports of imports finished long ago."""
    from customers import imports

    imports.purge_files(days)


# --- Partitions and archiving of history ---


@shared_task(bind=True, max_retries=5, acks_late=True)
def create_history_partitions(self, months_ahead=None):
    """Make the coming months' partitions (nightly; a rerun finds them made and does nothing)."""
    from customers import partitions

    try:
        partitions.create_partitions(months_ahead=months_ahead)
    except DatabaseError as error:
        raise self.retry(exc=error, countdown=2**self.request.retries * 30) from error


@shared_task(bind=True, max_retries=5, acks_late=True)
def archive_old_history(self):
    """Archive the months past ARCHIVE_HISTORY_AFTER_MONTHS (monthly; each month moves in a
    transaction of its own, so a rerun after a failure carries on with the months left)."""
    from customers import partitions

    try:
        partitions.archive_history()
    except DatabaseError as error:
        raise self.retry(exc=error, countdown=2**self.request.retries * 60) from error


# --- Archiving ---


@shared_task(bind=True, max_retries=3, acks_late=True)
def archive_inactive_customers(self):
    """Archive the customers inactive for ARCHIVE_CUSTOMERS_AFTER_MONTHS (nightly).

    Safe to run again: each batch commits on its own and the next run finds what is left.
    """
    from customers import archiving

    try:
        run = archiving.archive_inactive()
    except DatabaseError as error:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=error, countdown=60 * 2**self.request.retries) from error
        raise
    return {"customers": run.customers, "interactions": run.interactions, "orders": run.orders}


# Tasks of modules of their own, found by Celery's autodiscovery through this one.
from customers.retention_tasks import apply_retention_rules  # noqa: E402, F401
