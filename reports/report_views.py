"""Saved reports: the list, the builder, running one on screen, sharing, editing, deleting and
exporting. A report always runs with the permissions of whoever looks at it."""

import itertools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit
from accounts.permissions import can_export
from reports import reporting
from reports.exports import FORMATS, ExportRefused, export_response
from reports.forms import RenameForm, ReportForm, ShareForm
from reports.models import GeneratedFile, SavedReport
from reports.models.saved import get_report_for


@require_GET
@login_required
def index(request):
    reports = SavedReport.objects.visible_to(request.user).select_related("owner")
    return render(request, "reports/builder/index.html", {"reports": reports})


def _source(request):
    source = request.POST.get("source") or request.GET.get("source")
    return source if source in reporting.SOURCES else "customers"


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("reports.add_savedreport", raise_exception=True)
def create(request):
    source = _source(request)
    form = ReportForm(
        request.POST or None,
        source=source,
        owner=request.user,
        name_required=request.POST.get("action") == "save",
    )
    result = None
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") != "save":
            result = _preview(form.definition, request.user)
        else:
            with transaction.atomic():
                report = SavedReport.objects.create(
                    name=form.cleaned_data["name"],
                    kind=SavedReport.Kind.REPORT,
                    definition=form.definition,
                    owner=request.user,
                )
                audit.record(
                    audit.Action.REPORT_CREATE,
                    target=report,
                    request=request,
                    data={"kind": report.kind, "definition": report.definition},
                )
            messages.success(request, _("The report “%(name)s” was saved.") % {"name": report.name})
            return redirect(report)
    return _builder(request, form, result, status=400 if form.errors else 200)


def _builder(request, form, result, *, report=None, status=200):
    return render(
        request,
        "reports/builder/form.html",
        {
            "form": form,
            "report": report,
            "result": result,
            "sources": reporting.SOURCES.values(),
            "current_source": form.source,
            "charts": [result["chart"]] if result and result["chart"] else [],
        },
        status=status,
    )


def _preview(definition, user, *, title=""):
    """The first rows of a report, for the page."""
    table = reporting.build_table(definition, user, title=title)
    return _screen(table)


def _screen(table):
    limit = settings.REPORT_SCREEN_ROWS
    rows = list(itertools.islice(iter(table.rows), limit + 1))
    return {
        "table": table,
        "rows": rows[:limit],
        "more": len(rows) > limit,
        "limit": limit,
        "chart": _browser_chart(table.chart),
    }


def _browser_chart(chart):
    """An exports.Chart in the form static/js/charts.js draws (its first series)."""
    if chart is None or not chart.series:
        return None
    name, values = chart.series[0]
    return {
        "id": "report-chart",
        "kind": "pie" if chart.kind == "pie" else "columns",
        "labels": list(chart.categories),
        "counts": list(values),
        "name": name,
    }


@require_GET
@login_required
def detail(request, pk):
    report = get_report_for(request.user, pk)
    try:
        result = _screen(report.table(request.user))
        problem = ""
    except (ValueError, ValidationError) as error:
        # A definition that no longer fits (a field retired since it was saved).
        result, problem = None, " ".join(getattr(error, "messages", [str(error)]))
    pivot_url = ""
    if report.kind == SavedReport.Kind.ANALYSIS:
        query = QueryDict(mutable=True)
        for name, values in report.definition.get("params", {}).items():
            query.setlist(name, values if isinstance(values, list) else [values])
        pivot_url = f"{reverse('analysis:pivot')}?{query.urlencode()}"
    return render(
        request,
        "reports/builder/detail.html",
        {
            "report": report,
            "result": result,
            "problem": problem,
            "mine": report.owner_id == request.user.pk,
            "can_export": can_export(request.user),
            "formats": FORMATS,
            "pivot_url": pivot_url,
            "charts": [result["chart"]] if result and result["chart"] else [],
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def edit(request, pk):
    report = get_report_for(request.user, pk, "change")
    if report.kind == SavedReport.Kind.ANALYSIS:
        return _rename(request, report)
    source = _source(request) if request.method == "POST" else report.definition.get("source")
    form = ReportForm(
        request.POST or None,
        initial=ReportForm.initial_from(report),
        source=source if source in reporting.SOURCES else "customers",
        owner=request.user,
        instance=report,
        name_required=True,
    )
    result = None
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") != "save":
            result = _preview(form.definition, request.user)
        else:
            before = {"name": report.name, "definition": report.definition}
            report.name, report.definition = form.cleaned_data["name"], form.definition
            with transaction.atomic():
                report.save()
                audit.record(
                    audit.Action.REPORT_UPDATE,
                    target=report,
                    request=request,
                    data={
                        "before": before,
                        "after": {"name": report.name, "definition": report.definition},
                    },
                )
            messages.success(request, _("The report “%(name)s” was saved.") % {"name": report.name})
            return redirect(report)
    return _builder(request, form, result, report=report, status=400 if form.errors else 200)


def _rename(request, report):
    form = RenameForm(
        request.POST or None, initial={"name": report.name}, owner=request.user, instance=report
    )
    if request.method == "POST" and form.is_valid():
        before = report.name
        report.name = form.cleaned_data["name"]
        with transaction.atomic():
            report.save(update_fields=["name", "updated_at"])
            audit.record(
                audit.Action.REPORT_UPDATE,
                target=report,
                request=request,
                data={"before": {"name": before}, "after": {"name": report.name}},
            )
        messages.success(request, _("The report was renamed."))
        return redirect(report)
    return render(
        request,
        "reports/builder/rename.html",
        {"form": form, "report": report},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def share(request, pk):
    report = get_report_for(request.user, pk, "change")
    form = ShareForm(request.POST or None, report=report)
    if request.method == "POST" and form.is_valid():
        groups, users = (
            form.cleaned_data["shared_with_groups"],
            form.cleaned_data["shared_with_users"],
        )
        with transaction.atomic():
            report.shared_with_groups.set(groups)
            report.shared_with_users.set(users)
            audit.record(
                audit.Action.REPORT_SHARE,
                target=report,
                request=request,
                data={
                    "groups": sorted(g.name for g in groups),
                    "users": sorted(u.get_username() for u in users),
                },
            )
        messages.success(request, _("Sharing of “%(name)s” was saved.") % {"name": report.name})
        return redirect(report)
    return render(
        request,
        "reports/builder/share.html",
        {"form": form, "report": report},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def delete(request, pk):
    report = get_report_for(request.user, pk, "delete")
    if request.method == "POST":
        with transaction.atomic():
            audit.record(
                audit.Action.REPORT_DELETE,
                target=report,
                request=request,
                data={"kind": report.kind, "definition": report.definition},
            )
            report.delete()
        messages.success(request, _("The report “%(name)s” was deleted.") % {"name": report.name})
        return redirect("reports:index")
    return render(request, "reports/builder/confirm_delete.html", {"report": report})


def _exporting(request, pk):
    report = get_report_for(request.user, pk)
    if not can_export(request.user):
        raise PermissionDenied
    return report


@require_GET
@login_required
def export(request, pk):
    """A small report downloaded at once; a larger one is built in the background."""
    report = _exporting(request, pk)
    fmt = request.GET.get("format")
    if fmt not in FORMATS:
        messages.error(request, _("Choose a file format."))
        return redirect(report)
    try:
        table = report.table(request.user)
    except (ValueError, ValidationError):
        messages.error(request, _("This report can no longer be run; edit it first."))
        return redirect(report)
    limit = settings.REPORT_DIRECT_EXPORT_ROWS
    rows = list(itertools.islice(iter(table.rows), limit + 1))
    if len(rows) > limit:
        messages.info(
            request,
            _("This report has more than %(n)s rows: build its file in the background.")
            % {"n": limit},
        )
        return redirect(report)
    table.rows = rows
    try:
        return export_response(request, table, fmt, what=f"report: {report.name}")
    except ExportRefused as refusal:
        messages.error(request, str(refusal))
        return redirect(report)


@require_POST
@login_required
def generate(request, pk):
    """Queue the report's file for a worker; it appears on the generated files page."""
    report = _exporting(request, pk)
    fmt = request.POST.get("format")
    if fmt not in FORMATS:
        messages.error(request, _("Choose a file format."))
        return redirect(report)
    GeneratedFile.queue(
        owner=request.user,
        title=report.name,
        format=fmt,
        spec={"kind": "report", "report": str(report.pk)},
    )
    messages.success(request, _("The file is being made; it will be listed here when ready."))
    return redirect("files:list")
