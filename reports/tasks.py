"""Celery tasks of the reports app: thin, taking ids; the work is in models and services."""

from celery import shared_task

# --- Customer analytics (reports/metrics.py) ---


@shared_task(bind=True, acks_late=True, max_retries=3)
def refresh_customer_metrics(self, refresh_id=None):
    """Recompute scores, segments and lifetime values (nightly without an id, or the refresh
    someone asked for). Safe to rerun: a refresh rewrites only what changed."""
    from django.db import DatabaseError

    from reports import metrics
    from reports.models import MetricsRefresh

    if refresh_id is None:
        refresh = MetricsRefresh.objects.create()
    else:
        refresh = MetricsRefresh.objects.filter(pk=refresh_id).first()
    if refresh is None or refresh.state == MetricsRefresh.State.DONE:
        return
    try:
        metrics.refresh_metrics(refresh, finish=False)
        # Cohorts and preferences read the orders, so they are not computed while a page waits.
        metrics.warm_order_figures(refresh)
        metrics.finish_refresh(refresh)
    except DatabaseError as error:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=error, countdown=5 * 2**self.request.retries) from error
        MetricsRefresh.objects.filter(pk=refresh.pk).update(
            state=MetricsRefresh.State.FAILED, error=str(error)[:1000]
        )
        raise
    except Exception as error:
        MetricsRefresh.objects.filter(pk=refresh.pk).update(
            state=MetricsRefresh.State.FAILED, error=str(error)[:1000]
        )
        raise


# --- end of customer analytics ---

# --- Exports and generated files (reports/models/files.py) ---


@shared_task(bind=True, acks_late=True, max_retries=5)
def build_generated_file(self, file_id):
    """Make a generated file; a rerun of a finished one does nothing, a transient database
    error is retried with a growing pause (5, 10, 20, ... seconds)."""
    from reports.models import GeneratedFile
    from reports.models.files import TRANSIENT_ERRORS

    generated = GeneratedFile.objects.select_related("owner").filter(pk=file_id).first()
    if generated is None or generated.status == GeneratedFile.Status.DONE:
        return
    retry_transient = self.request.retries < self.max_retries
    try:
        generated.build(retry_transient=retry_transient)
    except TRANSIENT_ERRORS as error:
        if retry_transient:
            raise self.retry(exc=error, countdown=5 * 2**self.request.retries) from error
        raise


@shared_task
def delete_expired_generated_files():
    """Delete generated files past their retention period (hourly, from beat)."""
    from reports.models import GeneratedFile

    return GeneratedFile.objects.expired().delete_with_files()


# --- end of exports and generated files ---

# Scheduled reports' tasks live beside their logic; importing them here registers them with the
# workers, which discover only this module.
from reports.schedule_tasks import dispatch_scheduled_reports, run_scheduled_report  # noqa: E402, F401
