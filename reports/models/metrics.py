"""Customer analytics: each customer's purchase figures, RFM scores and lifetime value.

Orders, revenue and the first and last order time are kept current by PostgreSQL triggers on
customers_order (migration 0002_customer_metrics); the scores, segment and lifetime value are
computed for all customers at once by reports.metrics.refresh_metrics.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cims.ids import uuid7
from customers.models import Customer

__all__ = ["CustomerMetrics", "MetricsRefresh", "Segment"]

# What the customer list sorts on for "last order": customers who never ordered come last.
NEVER = "1970-01-01T00:00:00Z"


class Segment(models.TextChoices):
    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    POTENTIAL = "potential", _("Potential loyalists")
    NEW = "new", _("New customers")
    AT_RISK = "at_risk", _("At risk")
    HIBERNATING = "hibernating", _("Hibernating")
    LOST = "lost", _("Lost")


class CustomerMetrics(models.Model):
    """One row per customer (a trigger adds it when the customer is created)."""

    customer = models.OneToOneField(
        Customer,
        primary_key=True,
        on_delete=models.DB_CASCADE,
        related_name="metrics",
        verbose_name=_("customer"),
    )
    orders = models.PositiveIntegerField(_("orders"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=16, decimal_places=2, default=0)
    first_order_at = models.DateTimeField(_("first order"), null=True)
    last_order_at = models.DateTimeField(_("last order"), null=True)
    recency_score = models.PositiveSmallIntegerField(_("recency score"), null=True)
    frequency_score = models.PositiveSmallIntegerField(_("frequency score"), null=True)
    monetary_score = models.PositiveSmallIntegerField(_("monetary score"), null=True)
    # NULL, not "": a customer without orders has no segment, as they have no scores.
    segment = models.CharField(  # noqa: DJ001
        _("segment"), max_length=20, choices=Segment.choices, null=True
    )
    average_order_value = models.DecimalField(
        _("average order value"), max_digits=16, decimal_places=2, null=True
    )
    # Orders a year; see reports.metrics for how it is counted.
    purchase_frequency = models.FloatField(_("purchase frequency"), null=True)
    mean_interval_days = models.FloatField(_("mean days between purchases"), null=True)
    predicted_ltv = models.DecimalField(
        _("predicted lifetime value"), max_digits=16, decimal_places=2, null=True
    )
    # When the fields above were last computed; NULL once the order figures changed since.
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True)

    class Meta:
        verbose_name = _("customer metrics")
        verbose_name_plural = _("customer metrics")
        permissions = [("refresh_metrics", _("Can refresh customer analytics"))]
        indexes = [
            # Sorts of the customer list (keyset paging: the customer id breaks ties). The
            # expressions are the ones customers.filters sorts by, NULLs made sortable.
            models.Index(
                Coalesce("predicted_ltv", Value(0), output_field=models.DecimalField()),
                "customer",
                name="metrics_ltv_idx",
            ),
            models.Index(fields=["revenue", "customer"], name="metrics_revenue_idx"),
            models.Index(
                Coalesce("last_order_at", Value(NEVER), output_field=models.DateTimeField()),
                "customer",
                name="metrics_last_order_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(recency_score__range=(1, 5))
                & Q(frequency_score__range=(1, 5))
                & Q(monetary_score__range=(1, 5))
                | Q(recency_score__isnull=True, frequency_score__isnull=True)
                & Q(monetary_score__isnull=True),
                name="metrics_scores_1_to_5",
            ),
        ]

    def __str__(self):
        return f"{self.customer_id}: {self.segment or '-'}"

    @property
    def expected_lifetime_years(self):
        return settings.ANALYTICS_EXPECTED_LIFETIME_YEARS


class MetricsRefresh(models.Model):
    """One refresh of the scores and lifetime values, nightly or asked for, with its state."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Waiting to start")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # 0..100, written between the refresh's steps.
    progress = models.PositiveSmallIntegerField(default=0)
    customers = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # ANALYTICS_EXPECTED_LIFETIME_YEARS as this refresh applied it: when the setting differs
    # from the last refresh's, every predicted lifetime value is computed again.
    expected_lifetime_years = models.FloatField(null=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("analytics refresh")
        verbose_name_plural = _("analytics refreshes")
        indexes = [models.Index(fields=["state", "-created_at"], name="metricsrefresh_state_idx")]

    def __str__(self):
        return f"{self.get_state_display()} {self.created_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self):
        return reverse("analytics:refresh", args=[self.pk])

    @property
    def finished(self):
        return self.state in (self.State.DONE, self.State.FAILED)
