import datetime

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone

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
