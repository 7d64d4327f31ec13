"""The pivot page, its exports, and saving a pivot as a report."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import audit
from accounts.permissions import can_export
from reports import analysis
from reports.exports import ExportRefused, export_response
from reports.forms import SaveAnalysisForm
from reports.models import SavedReport

EXPORT_FORMATS = ("xlsx", "pdf", "csv")


@require_GET
@login_required
@permission_required("reports.view_analysis", raise_exception=True)
def pivot(request):
    form, filterset, result = analysis.run_pivot(request.GET, request.user)
    if search := filterset.form.fields.get("q"):
        # The list's search box belongs to the list's form and searches as one types; here it
        # is one more filter of this page's form.
        for attr in ("form", "data-live-search"):
            search.widget.attrs.pop(attr, None)
    return render(
        request,
        "reports/analysis/pivot.html",
        {
            "form": form,
            "filter": filterset,
            "pivot": result,
            "charts": [analysis.browser_chart(result)] if result else [],
            "query": request.GET.urlencode(),
            "can_export": can_export(request.user),
            "save_form": SaveAnalysisForm(owner=request.user) if result else None,
            "title": analysis.pivot_title(result) if result else "",
            "milliseconds": round(result.seconds * 1000) if result else None,
            "filter_active": bool(filterset.form.is_bound and analysis.describe_filters(filterset)),
        },
    )


@require_GET
@login_required
@permission_required("reports.view_analysis", raise_exception=True)
def export(request):
    if not can_export(request.user):
        raise PermissionDenied
    fmt = request.GET.get("format")
    form, _filterset, result = analysis.run_pivot(request.GET, request.user)
    query = request.GET.copy()
    query.pop("format", None)
    back = f"{reverse('analysis:pivot')}?{query.urlencode()}"
    if result is None or fmt not in EXPORT_FORMATS:
        messages.error(request, _("Choose the rows, the measure and a file format to export."))
        return redirect(back)
    try:
        return export_response(request, analysis.pivot_table(result), fmt, what="analysis")
    except ExportRefused as refusal:
        messages.error(request, str(refusal))
        return redirect(back)


@require_POST
@login_required
@permission_required("reports.view_analysis", raise_exception=True)
@permission_required("reports.add_savedreport", raise_exception=True)
def save(request):
    params = QueryDict(request.POST.get("query", ""))
    form = SaveAnalysisForm(request.POST, owner=request.user)
    back = f"{reverse('analysis:pivot')}?{params.urlencode()}"
    _form, _filterset, result = analysis.run_pivot(params, request.user)
    if result is None:
        messages.error(request, _("Choose the rows and the measure before saving."))
        return redirect(back)
    if not form.is_valid():
        for error in form.errors.get("name", []):
            messages.error(request, error)
        return redirect(back)
    try:
        with transaction.atomic():
            report = SavedReport.objects.create(
                name=form.cleaned_data["name"],
                kind=SavedReport.Kind.ANALYSIS,
                definition={"params": analysis.params_to_json(params)},
                owner=request.user,
            )
            audit.record(
                audit.Action.REPORT_CREATE,
                target=report,
                request=request,
                data={"kind": report.kind, "definition": report.definition},
            )
    except IntegrityError:
        messages.error(request, _("You already have a report with this name."))
        return redirect(back)
    messages.success(request, _("The analysis was saved as “%(name)s”.") % {"name": report.name})
    return redirect(report)
