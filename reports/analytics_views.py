"""The customer analytics page (RFM segments, lifetime value, cohorts) and its refresh."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from reports import metrics
from reports.models import MetricsRefresh


def _require(user, perm):
    if not user.has_perm(perm):
        raise PermissionDenied


@require_GET
def customer_analytics(request):
    _require(request.user, "reports.view_analysis")
    figures = metrics.analytics_figures(request.user)
    context = {
        **figures,
        "charts": _charts(figures),
        "last_refresh": metrics.last_refresh(),
        "can_refresh": request.user.has_perm("reports.refresh_metrics"),
        "preference_months": settings.ANALYTICS_PREFERENCE_MONTHS,
    }
    return render(request, "reports/analytics/customer_analytics.html", context)


def _charts(figures):
    """Data for static/js/charts.js; the page's tables hold the same figures."""
    segments = [row for row in figures["segments"] if row["segment"]]
    return [
        {
            "id": "chart-segments",
            "kind": "pie",
            "labels": [str(row["label"]) for row in segments],
            "counts": [row["customers"] for row in segments],
        },
        {
            "id": "chart-segment-revenue",
            "kind": "bars",
            "labels": [str(row["label"]) for row in segments],
            "counts": [float(row["revenue"]) for row in segments],
        },
    ]


@require_POST
def refresh_start(request):
    _require(request.user, "reports.refresh_metrics")
    refresh = metrics.queue_refresh(user=request.user)
    if refresh.requested_by_id == request.user.pk and refresh.state == MetricsRefresh.State.QUEUED:
        messages.success(request, _("The customer analytics are being refreshed."))
    else:
        messages.info(request, _("A refresh of the customer analytics is already under way."))
    return redirect(refresh)


@require_GET
def refresh_progress(request, pk):
    _require(request.user, "reports.refresh_metrics")
    refresh = get_object_or_404(MetricsRefresh, pk=pk)
    template = "reports/analytics/refresh_progress.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, {"refresh": refresh})
