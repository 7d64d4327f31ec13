import logging

from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """The process is alive and serving requests."""
    return HttpResponse("ok\n", content_type="text/plain")


@login_not_required
@never_cache
@require_GET
def readyz(request):
    """The database and Redis answer; otherwise 503 without saying more to the caller."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        cache.get("readyz")
    except Exception:
        logger.exception("Readiness check failed")
        return HttpResponse("unavailable\n", content_type="text/plain", status=503)
    return HttpResponse("ready\n", content_type="text/plain")


@require_GET
def home(request):
    """Each user's start page: customers for those who work with them, else the audit trail."""
    from accounts.permissions import can_list_customers, can_view_audit

    if not can_list_customers(request.user) and can_view_audit(request.user):
        return redirect("audit:list")
    return redirect("customers:list")
