"""Files built in the background (large exports, scheduled reports) for one user to download."""

import datetime
import logging
import tempfile
import time
import zoneinfo

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import InterfaceError, OperationalError, models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cims.ids import uuid7

__all__ = ["GeneratedFile", "GeneratedFileQuerySet"]

logger = logging.getLogger(__name__)

# Errors worth another try: a lost database connection, a deadlock, a full disk being cleared.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def _upload_to(generated, filename):
    return f"generated/{generated.owner_id}/{generated.pk}/{filename}"


class GeneratedFileQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Only the owner may see or download a file (it holds what they may see)."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        return self.filter(owner=user)

    def expired(self, now=None):
        return self.filter(expires_at__lt=now or timezone.now())

    def delete_with_files(self):
        """Delete the rows and their stored files; the number of rows deleted."""
        count = 0
        for generated in self.iterator():
            generated.delete()
            count += 1
        return count


class GeneratedFile(models.Model):
    class Format(models.TextChoices):
        XLSX = "xlsx", _("Excel")
        PDF = "pdf", _("PDF")
        CSV = "csv", _("CSV")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting")
        RUNNING = "running", _("Being made")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="generated_files",
    )
    title = models.CharField(_("title"), max_length=200)
    format = models.CharField(_("format"), max_length=10, choices=Format.choices)
    # What reports.exports.build_table() needs to make the table again, as the owner.
    spec = models.JSONField(_("specification"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    size = models.PositiveBigIntegerField(_("size"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    file = models.FileField(_("file"), upload_to=_upload_to, max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    objects = GeneratedFileQuerySet.as_manager()

    class Meta:
        verbose_name = _("generated file")
        verbose_name_plural = _("generated files")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="reports_genfile_owner_idx"),
            models.Index(fields=["expires_at"], name="reports_genfile_expires_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="reports_genfile_progress_max"
            ),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        if self.expires_at is None:
            days = settings.GENERATED_FILE_RETENTION_DAYS
            self.expires_at = (self.created_at or timezone.now()) + datetime.timedelta(days=days)
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("files:detail", args=[self.pk])

    def get_download_url(self):
        return reverse("files:download", args=[self.pk])

    @property
    def finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def download_name(self):
        return self.file.name.rsplit("/", 1)[-1] if self.file else ""

    @classmethod
    def queue(cls, *, owner, title, format, spec, expires_at=None):
        """A new file for `owner`, built by a worker once the caller's transaction commits."""
        generated = cls.objects.create(
            owner=owner, title=title[:200], format=format, spec=spec, expires_at=expires_at
        )
        generated.enqueue()
        return generated

    def enqueue(self):
        from reports.tasks import build_generated_file

        pk = str(self.pk)
        transaction.on_commit(lambda: build_generated_file.delay(pk))

    def retry(self):
        """Queue a failed file again (the retry button)."""
        if self.status != self.Status.FAILED:
            return False
        self._delete_stored_file()
        self.status, self.progress, self.error = self.Status.QUEUED, 0, ""
        self.rows = self.size = self.started_at = self.finished_at = None
        self.save(update_fields=self._state_fields())
        self.enqueue()
        return True

    @staticmethod
    def _state_fields():
        return ["status", "progress", "error", "rows", "size", "started_at", "finished_at", "file"]

    def build(self, *, retry_transient=False):
        """Make the file now (in a worker), with the owner's current permissions.

        Goes from running to done or failed, recording progress as rows are written and the
        export in the audit trail. A finished file is left as it is, so running it again is
        harmless. With `retry_transient`, an error worth another try (a lost database
        connection) puts the file back in the queue and is raised for the task to retry;
        any other error marks it failed, with a reason the owner can read, and is raised.
        """
        from reports import exports

        if self.status == self.Status.DONE:
            return
        self._delete_stored_file()
        self.status, self.progress, self.error = self.Status.RUNNING, 0, ""
        self.started_at, self.finished_at = timezone.now(), None
        self.save(update_fields=self._state_fields())
        owner = self.owner
        try:
            with _as_owner(owner):
                table = exports.build_table(self.spec, owner)
                with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as temporary:
                    rows = exports.write(
                        table, self.format, temporary, progress=self._progress_recorder(table)
                    )
                    self.size = temporary.tell()
                    temporary.seek(0)
                    self.file.save(exports.filename(table, self.format), File(temporary), False)
                self.rows = rows
                self.status, self.progress, self.finished_at = self.Status.DONE, 100, timezone.now()
                with transaction.atomic():
                    self.save(update_fields=self._state_fields())
                    self._record_export(table)
        except TRANSIENT_ERRORS as error:
            if not retry_transient:
                self._fail(error)
                raise
            self._delete_stored_file()
            self.status, self.progress = self.Status.QUEUED, 0
            self.error = gettext("Waiting to try again after a temporary error.")
            type(self).objects.filter(pk=self.pk).update(
                status=self.status, progress=0, error=self.error, file=""
            )
            raise
        except Exception as error:
            self._fail(error)
            raise

    def _progress_recorder(self, table):
        """Progress in whole percent, written at most twice a second (the page polls it)."""
        total = table.row_count
        last = {"percent": 0, "at": 0.0}
        rows = type(self).objects.filter(pk=self.pk)

        def record(done):
            if not total:
                return
            # The last few percent are for saving the file.
            percent = min(95, int(done * 95 / total))
            now = time.monotonic()
            if percent > last["percent"] and now - last["at"] >= 0.5:
                rows.update(progress=percent)
                last.update(percent=percent, at=now)
                self.progress = percent

        return record

    def _record_export(self, table):
        from accounts import audit

        audit.record(
            audit.Action.EXPORT,
            actor=self.owner,
            target=self,
            data={
                "what": self.spec.get("kind", ""),
                "title": self.title,
                "format": self.format,
                "rows": self.rows,
                "filters": [[label, value] for label, value in table.filters],
                "background": True,
            },
        )

    def _fail(self, error):
        from reports.exports import ExportRefused

        if isinstance(error, ExportRefused | PermissionDenied) and str(error):
            reason = str(error)
        elif isinstance(error, PermissionDenied):
            reason = gettext("You no longer have permission to make this file.")
        else:
            logger.exception("Generated file %s failed", self.pk)
            reason = gettext("The file could not be made (%(error)s). Try again later.") % {
                "error": type(error).__name__
            }
        self._delete_stored_file()
        self.status, self.error, self.finished_at = self.Status.FAILED, reason, timezone.now()
        self.rows = self.size = None
        type(self).objects.filter(pk=self.pk).update(
            status=self.status,
            error=reason,
            finished_at=self.finished_at,
            file="",
            rows=None,
            size=None,
        )

    def _delete_stored_file(self):
        if self.file:
            self.file.storage.delete(self.file.name)
            self.file = ""


@receiver(post_delete, sender=GeneratedFile)
def _remove_stored_file_with_row(sender, instance, **kwargs):
    """The stored file goes with its row, also when its owner is deleted (a cascade); only once
    the deletion is committed, so that a rolled-back one leaves both."""
    if name := instance.file.name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))


class _as_owner:
    """The owner's language and time zone while their file is made (names, dates, headers)."""

    def __init__(self, owner):
        self.language = getattr(owner, "language", "") or settings.LANGUAGE_CODE
        zone = getattr(owner, "time_zone", "") or settings.TIME_ZONE
        try:
            self.zone = zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)

    def __enter__(self):
        self._language = translation.override(self.language)
        self._zone = timezone.override(self.zone)
        self._language.__enter__()
        self._zone.__enter__()

    def __exit__(self, *exc):
        self._zone.__exit__(*exc)
        self._language.__exit__(*exc)
