import io

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from accounts import audit
from accounts.permissions import can_export_customer_data, get_customer_for
from customers import access_export

CONTENT_TYPES = {"json": "application/json; charset=utf-8", "pdf": "application/pdf"}


@require_GET
def customer_data_export(request, pk, fmt):
    """Everything held about one customer, as JSON (streamed) or PDF; audited with the counts
    of what was exported."""
    customer = get_customer_for(request.user, pk, "view")
    if not can_export_customer_data(request.user, customer):
        raise PermissionDenied
    if fmt not in CONTENT_TYPES:
        raise Http404
    counts = access_export.counts(customer)
    with transaction.atomic():
        audit.record(
            audit.Action.DATA_EXPORT,
            target=customer,
            data={"format": fmt, "sections": counts},
        )
    if fmt == "json":
        response = StreamingHttpResponse(
            access_export.json_chunks(customer), content_type=CONTENT_TYPES[fmt]
        )
    else:
        buffer = io.BytesIO()
        access_export.write_pdf(customer, buffer)
        response = HttpResponse(buffer.getvalue(), content_type=CONTENT_TYPES[fmt])
    name = f"customer-{customer.pk}-{timezone.localdate():%Y%m%d}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name)
    return response
