"""Generated files (the Reports page's downloads) and the customer list's exports."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit
from accounts.permissions import can_export
from customers.views import list_query
from reports import exports
from reports.customer_export import customer_table, filtered_customers, stored_query
from reports.models import GeneratedFile

# The newest files shown on the Reports page; older ones expire anyway.
LIST_LIMIT = 200


def _own_file(request, pk):
    return get_object_or_404(GeneratedFile.objects.visible_to(request.user), pk=pk)


@require_GET
def file_list(request):
    files = GeneratedFile.objects.visible_to(request.user)[:LIST_LIMIT]
    pending = any(not generated.finished for generated in files)
    template = "reports/files/file_list.html"
    if request.htmx:
        template += "#files"
    context = {
        "files": files,
        "pending": pending,
        "retention_days": settings.GENERATED_FILE_RETENTION_DAYS,
    }
    return render(request, template, context)


@require_GET
def file_detail(request, pk):
    generated = _own_file(request, pk)
    template = "reports/files/file_detail.html"
    if request.htmx:
        template += "#status"
    return render(request, template, {"file": generated})


@require_GET
def file_download(request, pk):
    generated = _own_file(request, pk)
    if generated.status != GeneratedFile.Status.DONE or not generated.file:
        raise Http404
    try:
        stored = generated.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    audit.record(
        audit.Action.REPORT_DOWNLOAD,
        target=generated,
        data={"title": generated.title, "format": generated.format, "rows": generated.rows},
    )
    response = FileResponse(stored, content_type=exports.CONTENT_TYPES[generated.format])
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=generated.download_name
    )
    return response


@require_POST
def file_retry(request, pk):
    generated = _own_file(request, pk)
    if generated.retry():
        messages.success(request, _("“%(title)s” will be made again.") % {"title": generated})
    return redirect(generated)


@require_POST
def file_delete(request, pk):
    generated = _own_file(request, pk)
    generated.delete()
    messages.success(request, _("“%(title)s” deleted.") % {"title": generated})
    return redirect("files:list")


@require_http_methods(["GET", "POST"])
def export_customers(request):
    """The customer list as filtered, as a file: at once when small, else in the background.

    GET downloads a small list, or asks to confirm making a large one in the background (which
    POST does: it creates the file and goes to its progress page).
    """
    if not can_export(request.user):
        raise PermissionDenied
    source = request.GET if request.method == "GET" else request.POST
    fmt = source.get("format")
    if fmt not in exports.FORMATS:
        raise BadRequest(_("Choose Excel, PDF or CSV."))
    query = list_query(request) if request.method == "GET" else _posted_query(request)
    query.pop("format", None)
    back = reverse("customers:list") + (f"?{query.urlencode()}" if query else "")
    try:
        customers, _filterset = filtered_customers(query, request.user)
    except exports.ExportRefused as refused:
        messages.error(request, str(refused))
        return redirect(back)
    rows = customers.count()
    if refusal := _refusal(fmt, rows):
        messages.error(request, refusal)
        return redirect(back)
    sync_limit = (
        settings.EXPORT_PDF_SYNC_MAX_ROWS if fmt == "pdf" else settings.EXPORT_SYNC_MAX_ROWS
    )
    if request.method == "GET" and rows <= sync_limit:
        table = customer_table(query, request.user)
        return exports.export_response(request, table, fmt, what="customers")
    if request.method == "GET":
        context = {"format": fmt, "label": exports.FORMAT_LABELS[fmt], "rows": rows}
        context.update(query=query, back=back)
        return render(request, "reports/files/export_confirm.html", context)
    generated = GeneratedFile.queue(
        owner=request.user,
        title=_("Customers"),
        format=fmt,
        spec={"kind": "customers", "query": stored_query(query)},
    )
    messages.success(
        request,
        _("The file is being made; it will be listed under your generated files when ready."),
    )
    return redirect(generated)


def _posted_query(request):
    from django.http import QueryDict

    # The list's query string, carried through the confirmation form.
    return QueryDict(request.POST.get("query", "")[:4000].replace("\x00", ""), mutable=True)


def _refusal(fmt, rows):
    if fmt == "pdf" and rows > settings.EXPORT_PDF_MAX_ROWS:
        return exports.pdf_row_limit_message(rows)
    if rows > settings.EXPORT_MAX_ROWS:
        return _(
            "%(rows)s customers are more than one export may hold (%(limit)s). "
            "Narrow the filters and export in parts."
        ) % {"rows": f"{rows:,}", "limit": f"{settings.EXPORT_MAX_ROWS:,}"}
    return None
