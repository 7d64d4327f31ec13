"""The import wizard: upload, map columns, check (preview), import, summary, revert.

Every step is a page that works without JavaScript; the check and the import run in Celery and
their progress is a fragment that htmx polls (or the user refreshes).
"""

import os
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import permissions
from customers import imports, tasks
from customers.import_fields import field_label, suggest
from customers.import_files import ImportFileError, inspect
from customers.import_forms import (
    UPLOAD_OVERHEAD,
    CheckForm,
    LimitedUploadHandler,
    MappingForm,
    UploadForm,
    too_large_message,
)
from customers.models import CustomerImport, CustomField, ImportMapping

LIST_LIMIT = 100


def _require_importer(user):
    if not permissions.can_import(user):
        raise PermissionDenied


def get_import_for(user, pk):
    """An import the user may see (their own; any, for administrators), or 404."""
    _require_importer(user)
    return get_object_or_404(CustomerImport.objects.visible_to(user).select_related("user"), pk=pk)


@require_GET
def import_list(request):
    _require_importer(request.user)
    imports = CustomerImport.objects.visible_to(request.user).select_related("user")
    return render(request, "customers/imports/import_list.html", {"imports": imports[:LIST_LIMIT]})


# The upload handler must be in place before the body is read, and the CSRF check reads it:
# the view is exempt from the middleware's check and makes it itself once the handler is set.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def import_upload(request):
    _require_importer(request.user)
    if request.method == "GET":
        return render(request, "customers/imports/upload.html", {"form": UploadForm()})
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.IMPORT_MAX_BYTES + UPLOAD_OVERHEAD:
        # Refused from the request's headers, before any of the body is read.
        form = _too_large_form()
        response = render(request, "customers/imports/upload.html", {"form": form}, status=413)
        response["Connection"] = "close"
        return response
    handler = LimitedUploadHandler(request)
    request.upload_handlers = [handler]
    return _upload(request, handler)


def _too_large_form():
    form = UploadForm(data={}, files={})
    form.is_valid()
    form.errors["file"] = form.error_class([too_large_message()])
    return form


@csrf_protect
def _upload(request, handler):
    form = UploadForm(request.POST, request.FILES)
    if handler.too_large:
        form = _too_large_form()
        return render(request, "customers/imports/upload.html", {"form": form}, status=413)
    if not form.is_valid():
        return render(request, "customers/imports/upload.html", {"form": form}, status=400)
    upload = form.cleaned_data["file"]
    try:
        info = inspect(upload.temporary_file_path(), upload.name)
    except ImportFileError as error:
        form.add_error("file", str(error))
        return render(request, "customers/imports/upload.html", {"form": form}, status=400)
    job = CustomerImport(
        user=request.user,
        file_name=os.path.basename(upload.name)[:255],
        file_size=upload.size,
        file_format=info.format,
        encoding=info.encoding,
        delimiter=info.delimiter,
        headers=info.headers,
        sample=info.sample,
    )
    job.file.save(f"{job.pk}{os.path.splitext(upload.name)[1].lower()[:8]}", upload, save=False)
    job.save()
    messages.success(request, _("File uploaded. Choose where each column goes."))
    return redirect("imports:mapping", pk=job.pk)


@require_http_methods(["GET", "POST"])
def import_mapping(request, pk):
    job = get_import_for(request.user, pk)
    if job.state not in (CustomerImport.State.UPLOADED, CustomerImport.State.CHECKED):
        return redirect(job)
    custom_fields = list(CustomField.objects.filter(active=True))
    saved = _saved_mapping(request.GET.get("saved"))
    if saved:
        suggested = suggest(job.headers, custom_fields, saved.columns)
    elif job.mapping:
        suggested = {int(number): target for number, target in job.mapping.items()}
    else:
        suggested = suggest(job.headers, custom_fields)
    form = MappingForm(
        request.POST or None, job=job, custom_fields=custom_fields, suggested=suggested
    )
    if request.method == "POST" and form.is_valid():
        job.mapping = form.cleaned_data["mapping"]
        job.on_duplicate = form.cleaned_data["on_duplicate"]
        with transaction.atomic():
            if name := form.cleaned_data["save_as"]:
                ImportMapping.objects.update_or_create(
                    name=name,
                    defaults={"columns": form.saved_columns(), "created_by": request.user},
                )
                messages.success(request, _("Mapping “%(name)s” saved.") % {"name": name})
            _queue_check(job)
        return redirect(job)
    context = {
        "job": job,
        "form": form,
        "saved_mappings": ImportMapping.objects.all(),
        "saved": saved,
    }
    return render(request, "customers/imports/mapping.html", context)


def _saved_mapping(raw):
    """The saved mapping a link names, or None (for a missing or malformed id too)."""
    try:
        pk = uuid.UUID(raw or "")
    except ValueError:
        return None
    return ImportMapping.objects.filter(pk=pk).first()


def _queue_check(job):
    job.state = CustomerImport.State.CHECKING
    job.processed = 0
    job.error = ""
    job.save(update_fields=["mapping", "on_duplicate", "state", "processed", "error"])
    transaction.on_commit(lambda: tasks.check_customer_import.delay(str(job.pk), get_language()))


@require_GET
def import_detail(request, pk):
    """The import as it stands: its progress, its preview, or its summary."""
    job = get_import_for(request.user, pk)
    if job.state == CustomerImport.State.UPLOADED:
        return redirect("imports:mapping", pk=job.pk)
    if job.busy:
        job.processed = imports.progress_of(job)
    context = {"job": job, "counts": job.preview.get("counts", {})}
    if request.htmx:
        response = render(request, "customers/imports/import_detail.html#progress", context)
        if not job.busy:
            # The step has finished: the whole page changes (to the preview or the summary).
            response["HX-Refresh"] = "true"
        return response
    if job.state == CustomerImport.State.CHECKED:
        custom_fields = list(CustomField.objects.all())
        context["preview_rows"] = [
            {**row, "values": [(field_label(k, custom_fields), v) for k, v in row["values"]]}
            for row in job.preview.get("rows", [])
        ]
        context["check_form"] = CheckForm(initial={"on_duplicate": job.on_duplicate})
    return render(request, "customers/imports/import_detail.html", context)


@require_POST
def import_check(request, pk):
    """Check the file again with another choice for known customers."""
    job = get_import_for(request.user, pk)
    if job.state != CustomerImport.State.CHECKED:
        messages.error(request, _("This import can no longer be changed."))
        return redirect(job)
    form = CheckForm(request.POST)
    if form.is_valid():
        job.on_duplicate = form.cleaned_data["on_duplicate"]
        with transaction.atomic():
            _queue_check(job)
    return redirect(job)


@require_POST
def import_run(request, pk):
    job = get_import_for(request.user, pk)
    with transaction.atomic():
        updated = CustomerImport.objects.filter(
            pk=job.pk, state=CustomerImport.State.CHECKED
        ).update(state=CustomerImport.State.QUEUED, processed=0, started_at=timezone.now())
        if not updated:
            messages.error(request, _("This import has already started."))
            return redirect(job)
        transaction.on_commit(lambda: tasks.run_customer_import.delay(str(job.pk), get_language()))
    messages.success(request, _("The import has started."))
    return redirect(job)


@require_GET
def import_report(request, pk):
    job = get_import_for(request.user, pk)
    if not job.report:
        raise Http404
    try:
        report = job.report.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    name = f"{os.path.splitext(job.file_name)[0]}-problems.csv"
    return FileResponse(report, as_attachment=True, filename=name, content_type="text/csv")


@require_http_methods(["GET", "POST"])
def import_revert(request, pk):
    job = get_import_for(request.user, pk)
    if not job.revertible:
        messages.error(request, _("This import cannot be reverted."))
        return redirect(job)
    if request.method == "POST":
        with transaction.atomic():
            updated = CustomerImport.objects.filter(
                pk=job.pk, state=CustomerImport.State.DONE
            ).update(state=CustomerImport.State.REVERTING, processed=0)
            if updated:
                user_id = request.user.pk
                transaction.on_commit(
                    lambda: tasks.revert_customer_import.delay(str(job.pk), user_id, get_language())
                )
        messages.success(request, _("The import is being reverted."))
        return redirect(job)
    return render(request, "customers/imports/revert_confirm.html", {"job": job})
