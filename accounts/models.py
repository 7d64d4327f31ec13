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


from accounts.audit import AuditEntry  # noqa: E402,F401
from accounts.audit_sealing import AuditSubjectKey  # noqa: E402,F401
