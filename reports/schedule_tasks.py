"""Celery tasks of scheduled reports (reports/scheduling.py does the work).

Celery's autodiscovery imports only reports/tasks.py, which imports this module.
"""

import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from reports import scheduling
from reports.models.files import TRANSIENT_ERRORS


@shared_task
def dispatch_scheduled_reports():
    """Fire the schedules that are due (Celery beat, every minute); see scheduling.py."""
    return len(scheduling.dispatch_due_schedules())


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_scheduled_report(self, run_id):
    """Build and email a run's files; a rerun resumes where the last one stopped."""
    try:
        scheduling.execute_run(run_id)
    except (scheduling.DeliveryDeferred, *TRANSIENT_ERRORS) as error:
        retries = self.request.retries
        if retries >= settings.SCHEDULED_REPORT_RETRIES:
            scheduling.give_up(run_id, error)
            return
        countdown = settings.SCHEDULED_REPORT_RETRY_SECONDS * 2**retries
        scheduling.set_retry_time(run_id, timezone.now() + datetime.timedelta(seconds=countdown))
        raise self.retry(exc=error, countdown=countdown) from error
