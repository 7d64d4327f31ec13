"""Records of erased customers, and the rules that erase customers after a time.

Imported at the end of customers.models, so that they are models of the customers app while
living in a module of their own (customers.erasure and customers.retention use them).
"""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cims.ids import uuid7


class ErasureReason(models.TextChoices):
    REQUEST = "request", _("The customer asked to be forgotten")
    RETENTION = "retention", _("Retention rule")
    OBJECTION = "objection", _("The customer objected to the processing")
    UNLAWFUL = "unlawful", _("The data should never have been collected")
    OTHER = "other", _("Other")


class Erasure(models.Model):
    """One customer erased: who, when and why, and nothing about the person.

    The same records are appended to a file outside the database (customers.erasure.Ledger),
    from which they are applied again to a database restored from an older backup.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No foreign keys: the tombstone customer may be deleted later, and a restored database may
    # lack the user who erased.
    customer_id = models.UUIDField(_("customer"), unique=True)
    erased_at = models.DateTimeField(_("erased at"), default=timezone.now)
    erased_by_id = models.BigIntegerField(_("erased by"), null=True, blank=True)
    erased_by_username = models.CharField(_("erased by"), max_length=150, blank=True)
    reason = models.CharField(_("reason"), max_length=20, choices=ErasureReason.choices)
    # The retention rule that erased the customer, if one did.
    rule = models.CharField(_("retention rule"), max_length=50, blank=True)

    class Meta:
        ordering = ["-erased_at"]
        verbose_name = _("erasure")
        verbose_name_plural = _("erasures")

    def __str__(self):
        return f"{self.customer_id} ({self.erased_at:%Y-%m-%d})"


class RetentionRule(models.Model):
    """How long one kind of record is kept; applied nightly by customers.retention.

    What each kind selects is code (customers.retention.KINDS); an administrator switches a rule
    on and sets its age in the admin site. New rules are off: nothing is erased until someone
    has looked at a dry run (`manage.py apply_retention --dry-run`) and turned the rule on.
    """

    class Kind(models.TextChoices):
        UNVERIFIED_LEADS = "unverified_leads", _("Erase leads never verified or contacted")
        INACTIVE_CHURNED = "inactive_churned", _("Erase churned customers inactive for long")
        OLD_SUBMISSIONS = (
            "old_submissions",
            _("Remove free-text answers and addresses from old form submissions"),
        )

    kind = models.CharField(_("rule"), max_length=30, choices=Kind.choices, unique=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    days = models.PositiveIntegerField(
        _("after days"),
        help_text=_("Records older than this many days (and, for customers, inactive as long)."),
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True, editable=False)
    last_count = models.PositiveIntegerField(
        _("records affected by the last run"), default=0, editable=False
    )

    class Meta:
        ordering = ["kind"]
        verbose_name = _("retention rule")
        verbose_name_plural = _("retention rules")
        constraints = [
            # Less than a month would erase customers who are simply new.
            models.CheckConstraint(condition=models.Q(days__gte=30), name="retention_days_min"),
        ]

    def __str__(self):
        return self.get_kind_display()
