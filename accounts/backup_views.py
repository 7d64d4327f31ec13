"""The administrators' backups page: what was backed up, when, and whether it worked.

Every view starts by checking `can_manage_users`, like the other administration pages. A backup
asked for here is made by a worker (accounts.tasks.run_backup), queued once the request's
transaction commits; the page polls while one is under way.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import audit, backups
from accounts.models import Backup
from accounts.permissions import can_manage_users

BACKUPS_PER_PAGE = 50


@require_GET
def backup_list(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    # The list polls while a backup runs: the manifests (every table and file) stay unread.
    backups_listed = Backup.objects.select_related("requested_by").defer("manifest")
    page = Paginator(backups_listed, BACKUPS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "pending": Backup.objects.unfinished().exists(),
        "warning": backups.warning(),
        "destination": backups.destination_label(),
        "key_id": backups.configured_key_id(),
        "keep": {
            "daily": settings.BACKUP_KEEP_DAILY,
            "weekly": settings.BACKUP_KEEP_WEEKLY,
            "monthly": settings.BACKUP_KEEP_MONTHLY,
        },
    }
    if request.htmx:
        return render(request, "accounts/manage/backup_list.html#backups", context)
    return render(request, "accounts/manage/backup_list.html", context)


@require_POST
def backup_start(request):
    if not can_manage_users(request.user):
        raise PermissionDenied
    backups.fail_interrupted()
    with transaction.atomic():
        # Locked so that two administrators clicking at once start one backup, not two.
        busy = Backup.objects.select_for_update().unfinished().exists()
        if not busy:
            backup = backups.create_backup(
                trigger=Backup.Trigger.REQUEST, requested_by=request.user
            )
            audit.record(audit.Action.BACKUP_REQUEST, target=backup, request=request)
            transaction.on_commit(lambda: _queue(backup.pk))
    if busy:
        messages.warning(request, _("A backup is already under way."))
    else:
        messages.success(request, _("Backup started. This page shows its progress."))
    return redirect("manage:backups")


def _queue(backup_id):
    from accounts.tasks import run_backup

    run_backup.delay(str(backup_id))


@require_GET
def backup_detail(request, pk):
    if not can_manage_users(request.user):
        raise PermissionDenied
    backup = get_object_or_404(Backup.objects.select_related("requested_by"), pk=pk)
    manifest = backup.manifest or {}
    database = manifest.get("database", {})
    tables = sorted((database.get("tables") or {}).items())
    context = {
        "backup": backup,
        "tables": tables,
        "rows": sum(table["rows"] for _name, table in tables),
        "files": manifest.get("files", []),
        "database": database,
    }
    if request.htmx:
        return render(request, "accounts/manage/backup_detail.html#status", context)
    return render(request, "accounts/manage/backup_detail.html", context)
