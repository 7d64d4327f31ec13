import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.utils.translation import gettext_lazy as _


class Team(models.Model):
    """A team of users. Its members are the members of its group, so that customers shared with
    the team (django-guardian group permissions) reach every member."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    group = models.OneToOneField(
        Group, on_delete=models.DB_CASCADE, editable=False, related_name="team"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # Group names are unique across roles and teams; the prefix keeps a team called
        # "Manager" apart from the role.
        if self.group_id is None:
            self.group = Group.objects.create(name=self.group_name(self.name))
        elif self.group.name != self.group_name(self.name):
            Group.objects.filter(pk=self.group_id).update(name=self.group_name(self.name))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        # The group goes with the team, and the database removes the team with the group.
        return self.group.delete(*args, **kwargs)

    @staticmethod
    def group_name(name):
        return f"team:{name}"

    @property
    def members(self):
        return self.group.user_set


class User(AbstractUser):
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, blank=True
    )

    class Meta(AbstractUser.Meta):
        ordering = ["username"]
        permissions = [
            ("manage_users", _("Can manage users, roles and teams")),
            ("view_audit_trail", _("Can view and export the audit trail")),
        ]

    def __str__(self):
        return self.display_name

    @property
    def teams(self):
        return Team.objects.filter(group__user=self)

    @property
    def display_name(self):
        # Chinese names read family name first, without a space.
        if self.last_name and self.first_name and not self.first_name.isascii():
            return f"{self.last_name}{self.first_name}"
        return self.get_full_name() or self.username


class BackupQuerySet(models.QuerySet):
    def unfinished(self):
        return self.filter(status__in=[Backup.Status.QUEUED, Backup.Status.RUNNING])


class Backup(models.Model):
    """One backup: made by `manage.py backup`, the nightly task or an administrator's request.

    The row is the record of what happened; the backup itself lives in the destination under
    `name`, and its authenticated manifest is inside it (a copy is kept here for the page).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        DELETED = "deleted", _("Deleted (retention)")

    class Stage(models.TextChoices):
        DATABASE = "database", _("Dumping the database")
        FILES = "files", _("Copying files")
        STORING = "storing", _("Storing")
        DONE = "done", _("Done")

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("Nightly schedule")
        REQUEST = "request", _("Administrator")
        COMMAND = "command", _("Command line")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        _("status"), max_length=20, choices=Status, default=Status.QUEUED, db_index=True
    )
    trigger = models.CharField(_("started by"), max_length=20, choices=Trigger)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    stage = models.CharField(_("stage"), max_length=20, choices=Stage, blank=True)
    # Bytes read so far (database dump and files): the page's progress while it runs.
    bytes_done = models.BigIntegerField(_("bytes read"), default=0)
    name = models.CharField(_("name"), max_length=200, blank=True)
    destination = models.CharField(_("destination"), max_length=500, blank=True)
    size = models.BigIntegerField(_("size"), null=True, blank=True)
    key_id = models.CharField(_("key id"), max_length=64, blank=True)
    manifest = models.JSONField(_("manifest"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = BackupQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("backup")
        verbose_name_plural = _("backups")

    def __str__(self):
        return self.name or str(self.id)

    @property
    def finished(self):
        return self.status not in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


from accounts.audit import AuditEntry  # noqa: E402,F401
from accounts.audit_sealing import AuditSubjectKey  # noqa: E402,F401
