"""Scheduled reports: a schedule of a saved report, its runs (one per period) and deliveries.

A schedule fires once per period. Each firing is a ScheduleRun, unique on (schedule,
period_start), made in the dispatch transaction; each recipient of a run has a Delivery row
whose state says how far their files and email got, so that a run interrupted anywhere resumes
without building or sending again what was already done (reports/scheduling.py).
"""

import zoneinfo

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from cims.ids import uuid7

__all__ = ["Delivery", "Schedule", "ScheduleRun"]


def default_time_zone():
    # A function, not the value: migrations must not depend on the TIME_ZONE variable.
    return settings.TIME_ZONE


class ScheduleQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Schedules a user may see: their own; administrators see every schedule."""
        from accounts.permissions import can_manage_users

        if not (user.is_authenticated and user.is_active):
            return self.none()
        if can_manage_users(user):
            return self
        return self.filter(owner=user)

    def due(self, now):
        return self.filter(paused=False, next_run_at__lte=now)


class Schedule(models.Model):
    class Frequency(models.TextChoices):
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")

    class Formats(models.TextChoices):
        PDF = "pdf", _("PDF")
        XLSX = "xlsx", _("Excel")
        BOTH = "both", _("PDF and Excel")

    class Weekday(models.IntegerChoices):
        # Python's date.weekday() numbering.
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    report = models.ForeignKey(
        "reports.SavedReport",
        verbose_name=_("report"),
        on_delete=models.CASCADE,
        related_name="schedules",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="report_schedules",
    )
    formats = models.CharField(
        _("formats"), max_length=10, choices=Formats.choices, default=Formats.PDF
    )
    frequency = models.CharField(
        _("frequency"), max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY
    )
    weekday = models.PositiveSmallIntegerField(
        _("day of the week"), choices=Weekday.choices, null=True, blank=True
    )
    day_of_month = models.PositiveSmallIntegerField(_("day of the month"), null=True, blank=True)
    time = models.TimeField(pgettext_lazy("time of day", "time"))
    time_zone = models.CharField(_("time zone"), max_length=64, default=default_time_zone)
    recipients = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("recipients"), related_name="+"
    )
    paused = models.BooleanField(_("paused"), default=False)
    # The next period's start, in UTC; null while paused. Dispatch fires schedules whose
    # next_run_at has passed and moves it on in the same transaction.
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        verbose_name = _("report schedule")
        verbose_name_plural = _("report schedules")
        ordering = ["report__name", "created_at"]
        indexes = [
            models.Index(
                fields=["next_run_at"],
                name="reports_schedule_due_idx",
                condition=models.Q(paused=False),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(frequency="weekly") | models.Q(weekday__isnull=False),
                name="reports_schedule_weekly_has_weekday",
            ),
            models.CheckConstraint(
                condition=~models.Q(frequency="monthly")
                | models.Q(day_of_month__gte=1, day_of_month__lte=31),
                name="reports_schedule_monthly_has_day",
            ),
        ]

    def __str__(self):
        return f"{self.report} ({self.get_frequency_display()})"

    @property
    def format_list(self):
        """The GeneratedFile formats each recipient gets."""
        return ["pdf", "xlsx"] if self.formats == self.Formats.BOTH else [self.formats]

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.time_zone)

    def describe(self):
        """When it runs, in words: "Weekly on Monday at 08:00 (Asia/Shanghai)"."""
        from django.utils.translation import gettext

        values = {"time": self.time.strftime("%H:%M"), "zone": self.time_zone}
        if self.frequency == self.Frequency.WEEKLY:
            values["day"] = self.get_weekday_display()
            return gettext("Weekly on %(day)s at %(time)s (%(zone)s)") % values
        if self.frequency == self.Frequency.MONTHLY:
            values["day"] = self.day_of_month
            return gettext("Monthly on day %(day)s at %(time)s (%(zone)s)") % values
        return gettext("Daily at %(time)s (%(zone)s)") % values

    def next_run_local(self):
        """The next run in the schedule's own time zone, as people read it."""
        return self.next_run_at.astimezone(self.zone) if self.next_run_at else None


class ScheduleRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    schedule = models.ForeignKey(
        Schedule, verbose_name=_("schedule"), on_delete=models.CASCADE, related_name="runs"
    )
    # The start of the period this run is for: the time the schedule was due (UTC).
    period_start = models.DateTimeField(_("period"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    # Times a worker started on this run, and found it left running by a lost worker: a run
    # that keeps killing its worker is given up.
    attempts = models.PositiveSmallIntegerField(default=0)
    interruptions = models.PositiveSmallIntegerField(default=0)
    # While waiting for the task's retry (after a mail server error), when that is due.
    retry_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched at every step, so that a stalled run (its worker gone) can be told apart.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("scheduled report run")
        verbose_name_plural = _("scheduled report runs")
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "period_start"], name="reports_schedulerun_once_per_period"
            )
        ]
        indexes = [
            models.Index(
                fields=["updated_at"],
                name="reports_schedulerun_open_idx",
                condition=models.Q(state__in=["queued", "running"]),
            )
        ]

    def __str__(self):
        return f"{self.schedule} @ {self.period_start:%Y-%m-%d %H:%M}"

    @property
    def finished(self):
        return self.state in (self.State.DONE, self.State.FAILED)


class Delivery(models.Model):
    """One recipient's share of a run: their files (built with their permissions) and email."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting")
        # Committed just before the email is handed to the mail server; see scheduling.py.
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    run = models.ForeignKey(
        ScheduleRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="deliveries"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recipient"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.PENDING
    )
    pdf_file = models.ForeignKey(
        "reports.GeneratedFile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    xlsx_file = models.ForeignKey(
        "reports.GeneratedFile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    attached = models.BooleanField(_("attached"), default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(_("error"), blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("scheduled report delivery")
        verbose_name_plural = _("scheduled report deliveries")
        ordering = ["recipient__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "recipient"], name="reports_delivery_once_per_recipient"
            )
        ]

    def __str__(self):
        return f"{self.run} → {self.recipient}"

    def file_for(self, fmt):
        return getattr(self, f"{fmt}_file")

    @property
    def message_id(self):
        """The same Message-ID for every attempt, so a resent message is one message."""
        from urllib.parse import urlsplit

        domain = urlsplit(settings.SITE_URL).hostname or "cims.invalid"
        return f"<scheduled-report.{self.pk}@{domain}>"
