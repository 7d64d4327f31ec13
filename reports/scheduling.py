"""Scheduled reports: when a schedule is due, firing it once per period, building and emailing.

How exactly-once works (docs/scheduled-reports.md says it for operators):

- Dispatch (a Celery beat task, every minute) takes due schedules with
  SELECT ... FOR UPDATE SKIP LOCKED, creates the period's ScheduleRun (unique on schedule and
  period start) with a Delivery per recipient, moves the schedule's next_run_at on, and queues
  the run when the transaction commits. A second beat, or two at once, finds nothing due or a
  run that already exists.
- A worker runs a run while holding a PostgreSQL session advisory lock on it. The lock is
  released when the worker's connection ends, so a killed worker frees it at once; a second
  worker given the same run while one is alive does nothing.
- Every step is recorded before the next: a delivery's files are built one by one (a file left
  "running" by a killed worker is built again), then the delivery is marked "sending" and
  committed, the email handed to the mail server, and the delivery marked "sent". A rerun skips
  what is sent. A worker killed between the mail server accepting a message and "sent" being
  committed (a few milliseconds) leaves "sending": the rerun sends the message again with the
  same Message-ID, which mail systems treat as the same message. We chose this over never
  resending, because a report that silently never arrives is worse than a rare duplicate.
- Runs whose worker vanished (the message was acknowledged late, but Redis only redelivers it
  after its visibility timeout) are queued again by dispatch once nobody holds their lock.
"""

import calendar
import contextlib
import datetime
import logging
import smtplib
import uuid
import zoneinfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import audit
from reports.models import Delivery, GeneratedFile, SavedReport, Schedule, ScheduleRun
from reports.models.files import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

# The first key of the advisory locks taken on runs ("SR"), so they cannot collide with others.
RUN_LOCK_CLASS = 0x5352


class DeliveryDeferred(Exception):
    """Some emails could not be handed to the mail server; the run is tried again later."""


# When a schedule is due -----------------------------------------------------------------------


def next_occurrence(schedule, after):
    """The first time after `after` (aware) at which `schedule` is due, in UTC.

    The time of day is read in the schedule's time zone; a monthly day past the end of a month
    falls on its last day (the 31st is the 30th in April, the 28th or 29th in February).
    """
    zone = zoneinfo.ZoneInfo(schedule.time_zone)
    day = after.astimezone(zone).date()
    # Two months of days always contain the next monthly occurrence.
    for _offset in range(63):
        if _is_due_on(schedule, day):
            local = datetime.datetime.combine(day, schedule.time, tzinfo=zone)
            candidate = local.astimezone(datetime.UTC)
            if candidate > after:
                return candidate
        day += datetime.timedelta(days=1)
    raise ValueError(f"{schedule!r} is never due")


def _is_due_on(schedule, day):
    if schedule.frequency == Schedule.Frequency.DAILY:
        return True
    if schedule.frequency == Schedule.Frequency.WEEKLY:
        return day.weekday() == schedule.weekday
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(schedule.day_of_month, last)


def plan(schedule, *, now=None):
    """Set next_run_at for a new, edited or resumed schedule (not saved)."""
    schedule.next_run_at = (
        None if schedule.paused else next_occurrence(schedule, now or timezone.now())
    )


# Dispatch ------------------------------------------------------------------------------------


def dispatch_due_schedules(*, now=None, batch=100):
    """Fire every schedule that is due: one ScheduleRun per period, queued on commit.

    Returns the runs created. Works in transactions of `batch` schedules, so that locks are
    short. Schedules missed while CIMS was down fire once when it is back, for the earliest
    missed period, then continue from now.
    """
    now = now or timezone.now()
    created = []
    while True:
        made, seen = _dispatch_batch(now, batch)
        created += made
        if seen < batch:
            break
    requeue_stalled_runs(now=now)
    return created


def _dispatch_batch(now, batch):
    """One transaction: lock up to `batch` due schedules, make their runs and deliveries, move
    them on. A handful of queries whatever the batch's size."""
    with transaction.atomic():
        due = list(
            Schedule.objects.due(now)
            .order_by("next_run_at")
            .select_for_update(skip_locked=True)[:batch]
        )
        if not due:
            return [], 0
        candidates = [ScheduleRun(schedule=s, period_start=s.next_run_at) for s in due]
        # INSERT ... ON CONFLICT DO NOTHING: a period that already has its run keeps it.
        ScheduleRun.objects.bulk_create(candidates, ignore_conflicts=True)
        created = list(ScheduleRun.objects.filter(pk__in=[c.pk for c in candidates]))
        run_of = {run.schedule_id: run for run in created}
        recipients = Schedule.recipients.through.objects.filter(schedule_id__in=run_of)
        Delivery.objects.bulk_create(
            [
                Delivery(run=run_of[schedule_id], recipient_id=user_id)
                for schedule_id, user_id in recipients.values_list("schedule_id", "user_id")
            ]
        )
        for schedule in due:
            # Past `now`, so the next batch does not see it again.
            schedule.next_run_at = next_occurrence(schedule, now)
        Schedule.objects.bulk_update(due, ["next_run_at"])
        for run in created:
            queue_run(run.pk)
    return created, len(due)


def queue_run(run_id):
    from reports.schedule_tasks import run_scheduled_report

    transaction.on_commit(lambda: run_scheduled_report.delay(str(run_id)))


def requeue_stalled_runs(*, now=None):
    """Queue again unfinished runs that no worker is running (their worker was killed).

    A run queued a moment ago and still waiting in the broker is left alone for
    SCHEDULED_REPORT_STALLED_SECONDS, and one waiting for its task's retry until the retry is
    due; queueing one twice would be harmless anyway.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.SCHEDULED_REPORT_STALLED_SECONDS)
    stalled = (
        ScheduleRun.objects.filter(
            state__in=[ScheduleRun.State.QUEUED, ScheduleRun.State.RUNNING],
            updated_at__lte=cutoff,
        )
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .values_list("pk", flat=True)
    )
    requeued = []
    for run_id in stalled:
        with run_lock(run_id) as free:
            if free:
                requeued.append(run_id)
    for run_id in requeued:
        logger.info("Queueing stalled scheduled report run %s again", run_id)
        ScheduleRun.objects.filter(pk=run_id).update(updated_at=now)
        queue_run(run_id)
    return requeued


def run_lock_keys(run_id):
    """The two keys of a run's advisory lock: this module's class, and 32 bits of the run id."""
    value = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    return [RUN_LOCK_CLASS, int.from_bytes(value.bytes[-4:], "big", signed=True)]


@contextlib.contextmanager
def run_lock(run_id):
    """A session advisory lock on a run, for the block: yields whether this process got it.

    Session-level, not transaction-level, because a run spans many transactions; PostgreSQL
    releases it when the connection ends, so a killed worker leaves no lock behind.
    """
    keys = run_lock_keys(run_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", keys)
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", keys)


# Running a run ---------------------------------------------------------------------------------


def execute_run(run_id):
    """Build and send what a run still owes its recipients; safe to call any number of times.

    Returns the run (None when it is gone or another worker is running it). Raises
    DeliveryDeferred when some emails could not be sent yet, after doing all the rest, and
    the database's transient errors; the run then waits in "queued" for the task's retry.
    """
    with run_lock(run_id) as free:
        if not free:
            return None
        run = ScheduleRun.objects.select_related("schedule__report").filter(pk=run_id).first()
        if run is None or run.finished:
            return run
        if run.state == ScheduleRun.State.RUNNING:
            # Nobody holds the lock, yet the run says running: its worker was lost mid-job.
            run.interruptions += 1
        run.attempts += 1
        run.state, run.retry_at = ScheduleRun.State.RUNNING, None
        run.started_at = run.started_at or timezone.now()
        run.save(
            update_fields=[
                "attempts",
                "interruptions",
                "state",
                "retry_at",
                "started_at",
                "updated_at",
            ]
        )
        if run.interruptions >= settings.SCHEDULED_REPORT_MAX_ATTEMPTS:
            fail_run(
                run,
                _("Stopped after its worker was lost %(count)s times.")
                % {"count": run.interruptions},
            )
            return run
        try:
            deferred = _deliver_all(run)
        except TRANSIENT_ERRORS:
            _wait_for_retry(run)
            raise
        if deferred:
            _wait_for_retry(run)
            raise DeliveryDeferred(deferred[0].error)
        finish_run(run)
        return run


def _deliver_all(run):
    """Deliver every pending delivery; the ones the mail server did not take."""
    deferred = []
    deliveries = run.deliveries.select_related("recipient", "pdf_file", "xlsx_file").filter(
        state__in=[Delivery.State.PENDING, Delivery.State.SENDING]
    )
    for delivery in deliveries:
        try:
            _deliver(run, delivery)
        except (smtplib.SMTPException, OSError) as error:
            delivery.attempts += 1
            delivery.error = _("The email could not be sent: %(error)s") % {"error": error}
            delivery.save(update_fields=["attempts", "error", "updated_at"])
            deferred.append(delivery)
    return deferred


def _wait_for_retry(run):
    # Best effort: with the database gone, the run stays "running" and counts as interrupted.
    try:
        ScheduleRun.objects.filter(pk=run.pk).update(
            state=ScheduleRun.State.QUEUED, updated_at=timezone.now()
        )
    except TRANSIENT_ERRORS:
        logger.warning("Could not mark run %s as waiting for a retry", run.pk)


def set_retry_time(run_id, when):
    """The task's retry is due at `when`: dispatch does not queue the run again before."""
    ScheduleRun.objects.filter(pk=run_id, state=ScheduleRun.State.QUEUED).update(retry_at=when)


def _deliver(run, delivery):
    schedule, recipient = run.schedule, delivery.recipient
    if delivery.state == Delivery.State.PENDING:
        if reason := _cannot_receive(schedule.report, recipient):
            _set(delivery, Delivery.State.SKIPPED, reason)
            return
        for fmt in schedule.format_list:
            generated = _build_file(run, delivery, fmt)
            if generated.status != generated.Status.DONE:
                _set(delivery, Delivery.State.FAILED, generated.error)
                return
        # Committed before the mail server is asked: from here on, a rerun sends again (with
        # the same Message-ID) instead of building again.
        _set(delivery, Delivery.State.SENDING, "")
    files = [delivery.file_for(fmt) for fmt in schedule.format_list]
    files = [f for f in files if f is not None and f.status == f.Status.DONE]
    attached = send_report_email(run, delivery, files)
    delivery.state, delivery.sent_at, delivery.attached = (
        Delivery.State.SENT,
        timezone.now(),
        attached,
    )
    delivery.error = ""
    delivery.save(update_fields=["state", "sent_at", "attached", "error", "updated_at"])


def _set(delivery, state, error):
    delivery.state, delivery.error = state, error or ""
    delivery.save(update_fields=["state", "error", "updated_at"])


def _cannot_receive(report, recipient):
    """Why `recipient` gets nothing from this run, or "" when they get their files."""
    if not recipient.is_active:
        return _("The recipient's account is deactivated.")
    if not recipient.email:
        return _("The recipient has no email address.")
    if not SavedReport.objects.visible_to(recipient).filter(pk=report.pk).exists():
        return _("The report is not shared with the recipient.")
    return ""


def _build_file(run, delivery, fmt):
    """The recipient's file in `fmt`, built with their permissions, or the one built before."""
    generated = delivery.file_for(fmt)
    if generated is None:
        schedule = run.schedule
        days = settings.SCHEDULED_REPORT_RETENTION_DAYS
        with transaction.atomic():
            generated = GeneratedFile.objects.create(
                owner=delivery.recipient,
                title=schedule.report.name,
                format=fmt,
                spec={"kind": "report", "report": str(schedule.report_id)},
                expires_at=timezone.now() + datetime.timedelta(days=days),
            )
            setattr(delivery, f"{fmt}_file", generated)
            delivery.save(update_fields=[f"{fmt}_file", "updated_at"])
    if generated.status != GeneratedFile.Status.DONE:
        # A file left queued or running was interrupted with its worker: this one holds the
        # run's lock, so nobody else is making it.
        try:
            generated.build(retry_transient=True)
        except TRANSIENT_ERRORS:
            # Queued again by build(); the task tries the run again after a while.
            raise
        except Exception:  # noqa: BLE001 - build() recorded why, for the recipient to read
            generated.refresh_from_db()
    ScheduleRun.objects.filter(pk=run.pk).update(updated_at=timezone.now())
    return generated


def finish_run(run):
    states = set(run.deliveries.values_list("state", flat=True))
    if Delivery.State.FAILED in states:
        failed = run.deliveries.filter(state=Delivery.State.FAILED).select_related("recipient")
        reasons = "; ".join(f"{d.recipient.get_username()}: {d.error}" for d in failed)
        fail_run(run, reasons)
        return
    run.state, run.finished_at, run.error = ScheduleRun.State.DONE, timezone.now(), ""
    run.save(update_fields=["state", "finished_at", "error", "updated_at"])


def fail_run(run, error):
    """Mark a run failed, with deliveries not yet sent failed too, and audit it."""
    with transaction.atomic():
        run.deliveries.filter(state__in=[Delivery.State.PENDING, Delivery.State.SENDING]).update(
            state=Delivery.State.FAILED, error=error, updated_at=timezone.now()
        )
        run.state, run.finished_at, run.error = ScheduleRun.State.FAILED, timezone.now(), error
        run.save(update_fields=["state", "finished_at", "error", "updated_at"])
        audit.record(
            audit.Action.SCHEDULE_FAILED,
            target=run.schedule,
            data={
                "report": run.schedule.report.name,
                "period": run.period_start.isoformat(),
                "error": error,
                "failed": list(
                    run.deliveries.filter(state=Delivery.State.FAILED).values_list(
                        "recipient__username", flat=True
                    )
                ),
            },
        )
    logger.warning("Scheduled report run %s failed: %s", run.pk, error)


def give_up(run_id, error):
    """After the last retry: the run fails with the reason of the last error."""
    with run_lock(run_id) as free:
        run = ScheduleRun.objects.select_related("schedule__report").filter(pk=run_id).first()
        if free and run is not None and not run.finished:
            fail_run(run, str(error))


# The email -----------------------------------------------------------------------------------


def send_report_email(run, delivery, files):
    """Email `files` to the delivery's recipient: attached when small, as links otherwise.

    Returns whether the files were attached. Raises what the mail server raised.
    """
    schedule, recipient = run.schedule, delivery.recipient
    attach = sum(f.size or 0 for f in files) <= settings.SCHEDULED_REPORT_ATTACHMENT_MAX_BYTES
    language = getattr(recipient, "language", "") or settings.LANGUAGE_CODE
    with translation.override(language), timezone.override(schedule.zone):
        context = {
            "report": schedule.report,
            "schedule": schedule,
            "recipient": recipient,
            "period": run.period_start.astimezone(schedule.zone),
            "files": [
                {
                    "file": f,
                    "name": f.download_name,
                    "url": absolute_url(f.get_download_url()),
                }
                for f in files
            ],
            "attached": attach,
            "files_url": absolute_url(reverse("files:list")),
            "retention_days": settings.SCHEDULED_REPORT_RETENTION_DAYS,
        }
        subject = " ".join(
            render_to_string("reports/email/scheduled_report_subject.txt", context).split()
        )
        text = render_to_string("reports/email/scheduled_report.txt", context)
        html = render_to_string("reports/email/scheduled_report.html", context)
    message = EmailMultiAlternatives(
        subject,
        text,
        settings.SCHEDULED_REPORT_FROM_EMAIL,
        [recipient.email],
        headers={"Message-ID": delivery.message_id},
    )
    message.attach_alternative(html, "text/html")
    if attach:
        from reports.exports import CONTENT_TYPES

        for f in files:
            with f.file.open("rb") as stored:
                message.attach(f.download_name, stored.read(), CONTENT_TYPES[f.format])
    message.send()
    return attach


def absolute_url(path):
    return settings.SITE_URL.rstrip("/") + path


# Pages' helpers ----------------------------------------------------------------------------------


def get_schedule_for(user, pk):
    """A schedule `user` may see, or 404 (see ScheduleQuerySet.visible_to)."""
    from django.shortcuts import get_object_or_404

    return get_object_or_404(
        Schedule.objects.visible_to(user).select_related("report", "owner"), pk=pk
    )


def schedulable_reports(user):
    return SavedReport.objects.visible_to(user)


# Demo data -----------------------------------------------------------------------------------


def create_demo_schedule(*, manager):
    """A weekly schedule of "Customers by province" for `manager` (idempotent).

    Needs the demo reports (reports.demo.create_demo_reports); returns None without them.
    """
    report = SavedReport.objects.filter(owner=manager, name="Customers by province").first()
    if report is None:
        return None
    schedule = Schedule.objects.filter(report=report, owner=manager).first()
    if schedule is not None:
        return schedule
    schedule = Schedule(
        report=report,
        owner=manager,
        formats=Schedule.Formats.BOTH,
        frequency=Schedule.Frequency.WEEKLY,
        weekday=Schedule.Weekday.MONDAY,
        time=datetime.time(8, 0),
        time_zone=settings.TIME_ZONE,
    )
    plan(schedule)
    with transaction.atomic():
        schedule.save()
        schedule.recipients.set([manager])
    return schedule


# Benchmark ---------------------------------------------------------------------------------------


def measure_dispatch(*, schedules=1000, recipients=3):
    """Time one dispatch of `schedules` due schedules (each with `recipients`), for `make bench`.

    Everything is made and dispatched in a transaction that is rolled back, so it may run on
    any database; nothing is queued. Returns {"schedules", "deliveries", "dispatch_ms"}.
    """
    import time

    from django.contrib.auth import get_user_model

    with transaction.atomic():
        User = get_user_model()
        users = User.objects.bulk_create(
            [
                User(username=f"bench-schedule-{i}", email=f"b{i}@example.com")
                for i in range(recipients)
            ]
        )
        report = SavedReport.objects.create(
            name="bench-schedule", definition={"source": "customers"}, owner=users[0]
        )
        now = timezone.now()
        made = Schedule.objects.bulk_create(
            [
                Schedule(
                    report=report,
                    owner=users[0],
                    frequency=Schedule.Frequency.DAILY,
                    time=datetime.time(8),
                    next_run_at=now - datetime.timedelta(minutes=1),
                )
                for _ in range(schedules)
            ]
        )
        Through = Schedule.recipients.through
        Through.objects.bulk_create(
            [Through(schedule_id=s.pk, user_id=u.pk) for s in made for u in users]
        )
        started = time.perf_counter()
        runs = dispatch_due_schedules(now=now)
        figures = {
            "schedules": len(runs),
            "deliveries": Delivery.objects.filter(run__in=runs).count(),
            "dispatch_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        # Nothing it made is kept, and the tasks it queued on commit are never sent.
        transaction.set_rollback(True)
    return figures
