"""Auditors' pages: search the audit trail and export what they found as CSV."""

import csv
import datetime

import django_filters
from django import forms
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import BadRequest
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from accounts import audit
from accounts.audit import Action, AuditEntry
from cims.paging import BadCursor, keyset_page

PAGE_SIZE = 50
EXPORT_BATCH = 2000
VIEW_AUDIT_TRAIL = "accounts.view_audit_trail"


class AuditFilter(django_filters.FilterSet):
    """Search by user, action, customer and day; each filter has an index ending in seq."""

    user = django_filters.CharFilter(
        field_name="actor_username", label=gettext_lazy("User"), max_length=150
    )
    action = django_filters.ChoiceFilter(
        choices=Action.choices, label=gettext_lazy("Action"), empty_label=gettext_lazy("Any")
    )
    customer = django_filters.UUIDFilter(
        field_name="customer_id", label=gettext_lazy("Customer ID")
    )
    since = django_filters.DateFilter(
        method="filter_since",
        label=gettext_lazy("From"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        method="filter_until",
        label=gettext_lazy("To"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = AuditEntry
        fields = []

    # Days are the auditor's days (TIME_ZONE), compared as a range of moments so that the
    # created_at index serves them.
    def filter_since(self, queryset, name, value):
        return queryset.filter(created_at__gte=_start_of(value))

    def filter_until(self, queryset, name, value):
        return queryset.filter(created_at__lt=_start_of(value + datetime.timedelta(days=1)))

    def description(self):
        """The filter as it was applied, for the audit entry of an export."""
        return {name: str(value) for name, value in self.form.cleaned_data.items() if value}


def _start_of(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


@require_GET
@permission_required(VIEW_AUDIT_TRAIL, raise_exception=True)
def audit_list(request):
    filterset = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    context = {"filter": filterset, "page": None, "page_number": _page_number(request)}
    if filterset.is_valid():
        try:
            context["page"] = keyset_page(
                filterset.qs,
                order=("-seq",),
                size=PAGE_SIZE,
                after=request.GET.get("after"),
                before=request.GET.get("before"),
            )
        except BadCursor:
            raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
    template = "accounts/audit_list.html#results" if request.htmx else "accounts/audit_list.html"
    return render(request, template, context)


def _page_number(request):
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


@require_GET
@permission_required(VIEW_AUDIT_TRAIL, raise_exception=True)
def audit_export(request):
    filterset = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    if not filterset.is_valid():
        raise BadRequest(_("Correct the filters before exporting."))
    response = StreamingHttpResponse(
        _export_rows(request, filterset), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


CSV_HEADER = (
    "seq",
    "time_utc",
    "action",
    "user",
    "user_id",
    "ip",
    "object_type",
    "object_id",
    "object",
    "customer_id",
    "details",
    "hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def _export_rows(request, filterset):
    """CSV lines of the matching entries, oldest first, read in keyset batches.

    The export ends at the head of the trail when it started, and is recorded when it ends (also
    when the download is broken off), with its filter and the number of rows sent.
    """
    writer = csv.writer(_Echo())
    last_seq, head_seq = 0, AuditEntry.objects.head()[0]
    rows = 0
    complete = False
    try:
        yield "\ufeff" + writer.writerow(CSV_HEADER)  # the BOM makes Excel read UTF-8
        queryset = filterset.qs.filter(seq__lte=head_seq).order_by("seq")
        while batch := list(queryset.filter(seq__gt=last_seq)[:EXPORT_BATCH]):
            yield "".join(writer.writerow(_csv_row(entry)) for entry in batch)
            rows += len(batch)
            last_seq = batch[-1].seq
        complete = True
    finally:
        audit.record(
            Action.AUDIT_EXPORT,
            actor=request.user,
            request=request,
            data={"filter": filterset.description(), "rows": rows, "complete": complete},
        )


def _csv_row(entry):
    return [
        safe_cell(value)
        for value in (
            entry.seq,
            entry.created_at.astimezone(datetime.UTC).isoformat(),
            entry.action,
            entry.actor_username,
            entry.actor_id,
            entry.ip,
            entry.object_type,
            entry.object_id,
            entry.object_repr,
            entry.customer_id,
            entry.details_json(),
            entry.hash,
        )
    ]
