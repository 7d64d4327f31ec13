"""Staff decide submitted values that differ from what is on record.

Only changes to customers the reviewer may change are listed or decided: any other is a 404,
exactly like one that does not exist.
"""

import datetime
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts import audit
from accounts.permissions import can_view_sensitive, changeable_customers, visible_customers
from cims.paging import BadCursor, keyset_page
from customers.masking import SENSITIVE_FIELDS, mask
from customers.models import Customer, CustomField, Gender
from customers.phones import format_phone
from intake import services
from intake.models import ProposedChange, Submission

ACCEPT, REJECT = "accept", "reject"


def can_review(user):
    return user.is_active and user.has_perm("intake.review_submission")


def _reviewable(user):
    """Submissions waiting for review whose customer `user` may change."""
    if not can_review(user):
        raise PermissionDenied
    return Submission.objects.filter(
        state=Submission.State.REVIEW,
        customer__in=changeable_customers(user).values("pk"),
    )


def _submission_for(user, pk):
    return get_object_or_404(_reviewable(user).select_related("form", "customer"), pk=pk)


def _change_for(user, pk):
    if not can_review(user):
        raise PermissionDenied
    return get_object_or_404(
        ProposedChange.objects.filter(
            customer__in=changeable_customers(user).values("pk")
        ).select_related("submission__form", "customer"),
        pk=pk,
    )


@require_GET
def review_list(request):
    submissions = _reviewable(request.user).select_related("form", "customer")
    customer_filter = _uuid_or_none(request.GET.get("customer"))
    if customer_filter:
        submissions = submissions.filter(customer_id=customer_filter)
    try:
        page = keyset_page(
            submissions,
            order=["-created_at", "-id"],
            size=settings.INTAKE_REVIEW_PAGE_SIZE,
            after=request.GET.get("after"),
            before=request.GET.get("before"),
        )
    except BadCursor:
        raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
    groups = _groups(request.user, page.items)
    context = {
        "page": page,
        "groups": groups,
        "customer_filter": customer_filter,
        "filtered_customer": groups[0].customer if customer_filter and groups else None,
    }
    return render(request, "intake/review/review_list.html", context)


def _uuid_or_none(value):
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class Row:
    """One proposed change as the review page shows it."""

    def __init__(self, change, label, on_record, submitted, conflict):
        self.change, self.label = change, label
        self.on_record, self.submitted, self.conflict = on_record, submitted, conflict


class Group:
    """A submission's open changes to one customer."""

    def __init__(self, submission, rows):
        self.submission, self.rows = submission, rows
        self.customer = submission.customer


def _groups(user, submissions):
    ids = [s.pk for s in submissions]
    changes = ProposedChange.objects.filter(submission__in=ids, decision="").select_related(
        "conflicting_customer"
    )
    by_submission = {}
    for change in changes.order_by("created_at", "id"):
        by_submission.setdefault(change.submission_id, []).append(change)
    conflicting = {c.conflicting_customer_id for c in changes if c.conflicting_customer_id}
    visible = set(
        visible_customers(user).filter(pk__in=conflicting).values_list("pk", flat=True)
        if conflicting
        else ()
    )
    labels = _labels()
    clear = can_view_sensitive(user)
    groups, revealed = [], {}
    for submission in submissions:
        rows = []
        for change in by_submission.get(submission.pk, []):
            on_record = _current(submission.customer, change.field)
            submitted = services.from_json_text(change.field, change.proposed_value)
            if change.field in SENSITIVE_FIELDS:
                if clear:
                    revealed.setdefault(submission.customer, set()).add(change.field)
                else:
                    on_record = mask(change.field, on_record)
                    submitted = mask(change.field, submitted)
            conflict = change.conflicting_customer
            rows.append(
                Row(
                    change,
                    labels.get(change.field, change.field),
                    _shown(change.field, on_record),
                    _shown(change.field, submitted),
                    (conflict, conflict.pk in visible) if conflict else None,
                )
            )
        groups.append(Group(submission, rows))
    # Showing sensitive values in clear is a reveal, recorded as the edit form records one.
    for customer, fields in revealed.items():
        audit.record(
            audit.Action.REVEAL,
            target=customer,
            data={"fields": sorted(fields), "page": "review"},
        )
    return groups


def _labels():
    labels = {
        f.name: str(f.verbose_name)
        for f in Customer._meta.get_fields()
        if hasattr(f, "verbose_name")
    }
    for definition in CustomField.objects.all():
        labels[f"attribute:{definition.key}"] = definition.display_label
    return labels


def _current(customer, field):
    if field.startswith("attribute:"):
        return customer.attributes.get(field.partition(":")[2])
    return getattr(customer, field)


def _shown(field, value):
    if value in (None, "", []):
        return ""
    if field == "gender":
        return str(dict(Gender.choices).get(value, value))
    if field == "phone" and str(value).startswith("+"):
        # As the rest of the application shows numbers (masked ones are already shown so).
        return format_phone(value)
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _decision(request):
    decision = request.POST.get("decision")
    if decision not in (ACCEPT, REJECT):
        raise BadRequest(_("Choose to accept or to reject."))
    return decision == ACCEPT


def _version(request):
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return None


def _back(request):
    customer = _uuid_or_none(request.POST.get("customer_filter"))
    url = reverse("intake:review")
    return redirect(f"{url}?{urlencode({'customer': customer})}" if customer else url)


@require_POST
def review_change(request, pk):
    change = _change_for(request.user, pk)
    accept = _decision(request)
    return _decide(request, change.submission, accept, change=change)


@require_POST
def review_submission(request, pk):
    submission = _submission_for(request.user, pk)
    accept = _decision(request)
    return _decide(request, submission, accept)


def _decide(request, submission, accept, change=None):
    version = _version(request)
    if version is None:
        messages.error(request, _("The page was incomplete. Look at the change again."))
        return _back(request)
    try:
        decided = services.decide(
            submission, accept=accept, user=request.user, expected_version=version, change=change
        )
    except services.ReviewRefused as refused:
        messages.error(request, str(refused))
        return _back(request)
    customer = submission.customer
    if not decided:
        messages.info(request, _("This was already decided."))
    elif accept:
        messages.success(
            request,
            ngettext(
                "%(count)d change to %(customer)s accepted.",
                "%(count)d changes to %(customer)s accepted.",
                decided,
            )
            % {"count": decided, "customer": customer},
        )
    else:
        messages.success(
            request,
            ngettext(
                "%(count)d change to %(customer)s rejected.",
                "%(count)d changes to %(customer)s rejected.",
                decided,
            )
            % {"count": decided, "customer": customer},
        )
    return _back(request)
