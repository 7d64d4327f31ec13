from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from cims.ids import uuid7

__all__ = ["SavedReport", "SavedReportQuerySet"]


class SavedReportQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The reports `user` may run: their own, and those shared with them or with one of
        their groups (roles and teams are groups)."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        through_users = SavedReport.shared_with_users.through.objects.filter(user=user)
        through_groups = SavedReport.shared_with_groups.through.objects.filter(group__user=user)
        return self.filter(
            Q(owner=user)
            | Q(pk__in=through_users.values("savedreport_id"))
            | Q(pk__in=through_groups.values("savedreport_id"))
        )

    def owned_by(self, user):
        return self.filter(owner=user) if user.is_authenticated else self.none()


class SavedReport(models.Model):
    """A named report of the report builder, or a pivot of the analysis page.

    The definition says what to compute, never for whom: a report runs with the permissions of
    whoever runs it (`table(user)`), so sharing it shares no figures the recipient may not see.
    """

    class Kind(models.TextChoices):
        REPORT = "report", _("Report")
        ANALYSIS = "analysis", _("Analysis")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.REPORT)
    definition = models.JSONField(_("definition"), default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="saved_reports",
    )
    shared_with_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("shared with users"), blank=True, related_name="+"
    )
    shared_with_groups = models.ManyToManyField(
        Group, verbose_name=_("shared with roles and teams"), blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = SavedReportQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("saved report")
        verbose_name_plural = _("saved reports")
        permissions = [("view_analysis", _("Can analyse customers"))]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="savedreport_unique_name"),
            models.CheckConstraint(
                condition=Q(kind__in=["report", "analysis"]), name="savedreport_kind_valid"
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("reports:detail", args=[self.pk])

    def table(self, user):
        """The report's figures as a reports.exports.Table, with `user`'s permissions."""
        if self.kind == self.Kind.ANALYSIS:
            from reports import analysis

            return analysis.table_from_params(
                self.definition.get("params", {}), user, title=self.name
            )
        from reports import reporting

        return reporting.build_table(self.definition, user, title=self.name)


def get_report_for(user, pk, action="view"):
    """The saved report `pk` if `user` may `action` ("view", "change", "delete") it.

    One they may not see is a 404, like one that does not exist; one they may see but not
    change (it is shared with them, or their role may not change reports) is a 403.
    """
    report = get_object_or_404(SavedReport.objects.visible_to(user).select_related("owner"), pk=pk)
    if action != "view" and not (
        report.owner_id == user.pk and user.has_perm(f"reports.{action}_savedreport")
    ):
        raise PermissionDenied
    return report
