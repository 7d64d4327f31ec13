"""The duplicate finder, merging two customers, and undoing a merge."""

import uuid

from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit, permissions
from accounts.permissions import (
    can,
    can_view_sensitive,
    changeable_customers,
    get_customer_for,
)
from cims.paging import BadCursor, keyset_page
from customers import duplicates, merging
from customers.duplicate_forms import CandidateFilterForm, MergeForm, UndoForm
from customers.masking import SENSITIVE_FIELDS
from customers.models import Customer, DuplicateCandidate, DuplicateScan, Merge

PAGE_SIZE = 50
MERGE_WITH_RESULTS = 20


def _require_merge(user):
    # Checked before any customer is looked up, so the answer says nothing about them.
    if not permissions.can_merge(user):
        raise PermissionDenied


def get_pair_for(user, pk, other):
    """The two customers, the one created first as A, if the user may merge them.

    A customer the user may not see is a 404, as everywhere; one they may see but not change, a
    403.
    """
    _require_merge(user)
    if pk == other:
        raise Http404
    first = get_customer_for(user, pk, "change")
    second = get_customer_for(user, other, "change")
    return tuple(sorted([first, second], key=lambda c: (c.created_at, str(c.pk))))


def _may_change_row(user, row):
    """Whether the user may change the customer a stored row was (it need not exist now)."""
    phantom = Customer(pk=row["id"], owner_id=row.get("owner_id"), team_id=row.get("team_id"))
    return can(user, "change", phantom)


def get_merge_for(user, pk):
    """(merge, survivor or None) if the user may merge both customers it joined."""
    _require_merge(user)
    merge = get_object_or_404(Merge, pk=pk)
    survivor = None
    if Customer.objects.filter(pk=merge.survivor_id).exists():
        survivor = get_customer_for(user, merge.survivor_id, "change")
    elif not merge.survivor_after or not _may_change_row(user, merge.survivor_after):
        raise Http404
    if merge.merged_row and not _may_change_row(user, merge.merged_row):
        raise Http404
    return merge, survivor


@require_GET
def candidate_list(request):
    _require_merge(request.user)
    form = CandidateFilterForm(request.GET or None)
    candidates = duplicates.candidates_for(request.user)
    customer = None
    if raw := request.GET.get("customer"):
        try:
            pk = uuid.UUID(raw)
        except ValueError:
            raise Http404 from None
        customer = get_customer_for(request.user, pk, "change")
        candidates = candidates.involving(customer)
    if form.is_bound and not form.is_valid():
        status, page = 400, None
    else:
        status = 200
        if form.is_bound:
            candidates = form.filter(candidates)
        try:
            page = keyset_page(
                candidates,
                order=["-score", "-id"],
                size=PAGE_SIZE,
                after=request.GET.get("after"),
                before=request.GET.get("before"),
            )
        except BadCursor:
            raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
    query = request.GET.copy()
    for name in ("after", "before"):
        query.pop(name, None)
    context = {
        "form": form,
        "page": page,
        "query": query,
        "customer": customer,
        "last_scan": duplicates.last_scan(),
        "running": DuplicateScan.objects.filter(
            state__in=[DuplicateScan.State.PENDING, DuplicateScan.State.RUNNING]
        ).first(),
        # Merges into customers deleted since drop out (an inner join).
        "recent_merges": Merge.objects.filter(merged_by=request.user, undone_at__isnull=True)
        .select_related("survivor")
        .only("id", "merged_name", "created_at", "survivor", "survivor__display_name")[:5],
    }
    return render(request, "customers/duplicates/candidate_list.html", context, status=status)


@require_POST
def scan_start(request):
    _require_merge(request.user)
    scan, created = duplicates.start_scan(user=request.user)
    if created:
        messages.success(request, _("Looking for duplicates among all customers."))
    else:
        messages.info(request, _("A search for duplicates is already under way."))
    return redirect(scan)


@require_GET
def scan_progress(request, pk):
    _require_merge(request.user)
    scan = get_object_or_404(DuplicateScan, pk=pk)
    template = "customers/duplicates/scan_progress.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, {"scan": scan})


@require_POST
def dismiss(request, pk, other):
    customer_a, customer_b = get_pair_for(request.user, pk, other)
    duplicates.dismiss(customer_a, customer_b, user=request.user)
    messages.success(
        request,
        _("%(a)s and %(b)s will not be proposed as duplicates again.")
        % {"a": customer_a, "b": customer_b},
    )
    return redirect(_next_url(request, reverse("duplicates:list")))


def _next_url(request, default):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_GET
def merge_with(request, pk):
    """Choose the customer to merge with: the proposed pairs first, then any by search."""
    _require_merge(request.user)
    customer = get_customer_for(request.user, pk, "change")
    query = request.GET.get("q", "").strip()[:100]
    proposed = (
        duplicates.candidates_for(request.user)
        .involving(customer)
        .order_by("-score", "-id")[:MERGE_WITH_RESULTS]
    )
    results = []
    if query:
        results = (
            changeable_customers(request.user)
            .search(query)
            .exclude(pk=customer.pk)
            .order_by("name_pinyin", "id")[:MERGE_WITH_RESULTS]
        )
    context = {
        "customer": customer,
        "query": query,
        "proposed": [(pair, pair.other(customer)) for pair in proposed],
        "results": results,
    }
    return render(request, "customers/duplicates/merge_with.html", context)


@require_http_methods(["GET", "POST"])
def merge(request, pk, other):
    customer_a, customer_b = get_pair_for(request.user, pk, other)
    show_sensitive = can_view_sensitive(request.user)
    form = MergeForm(
        request.POST or None,
        customer_a=customer_a,
        customer_b=customer_b,
        show_sensitive=show_sensitive,
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                done = merging.merge_customers(user=request.user, **form.merge_arguments())
            except merging.MergeConflict as error:
                form.add_error(None, str(error))
                status = 409
            except merging.MergeRefused as error:
                form.add_error(None, str(error))
                status = 400
            else:
                messages.success(
                    request,
                    _("%(merged)s was merged into %(kept)s.")
                    % {"merged": done.merged_name, "kept": done.survivor},
                )
                return redirect(done)
        else:
            status = 400
    if show_sensitive:
        # Both customers' sensitive values are shown in clear, on the page opened and on the page
        # shown again after a refused merge (with values someone may have changed since): a
        # recorded reveal, as editing is.
        for customer in (customer_a, customer_b):
            if shown := [f for f in SENSITIVE_FIELDS if getattr(customer, f)]:
                audit.record(audit.Action.REVEAL, target=customer, data={"fields": shown})
    pair = DuplicateCandidate.objects.of(customer_a, customer_b).first()
    context = {
        "form": form,
        "rows": form.bound_rows(),
        "customer_a": customer_a,
        "customer_b": customer_b,
        "pair": pair,
        "records": _record_counts(customer_a, customer_b),
    }
    return render(request, "customers/duplicates/merge.html", context, status=status)


def _record_counts(customer_a, customer_b):
    """[(label, count of A, count of B)] of the records that move with a merge."""
    relations = [
        (_("Orders"), "orders"),
        (_("Interactions"), "interactions"),
        (_("Consents"), "consents"),
        (_("Form submissions"), "submissions"),
    ]
    return [
        (label, getattr(customer_a, name).count(), getattr(customer_b, name).count())
        for label, name in relations
    ]


def _merge_context(merge, survivor, form):
    problem, edited = merging.undo_check(merge)
    return {
        "merge": merge,
        "survivor": survivor,
        "moved": merging.moved_summary(merge),
        "problem": problem,
        "edited": edited,
        "form": form,
        "days_left": merging.days_left(merge),
        "deadline": merging.undo_deadline(merge),
    }


@require_GET
def merge_detail(request, pk):
    merge, survivor = get_merge_for(request.user, pk)
    context = _merge_context(merge, survivor, UndoForm())
    return render(request, "customers/duplicates/merge_detail.html", context)


@require_POST
def merge_undo(request, pk):
    merge, survivor = get_merge_for(request.user, pk)
    form = UndoForm(request.POST)
    form.is_valid()
    try:
        restored = merging.undo_merge(
            merge, user=request.user, confirmed=form.cleaned_data.get("confirmed", False)
        )
    except merging.UndoNeedsConfirmation as error:
        form.add_error("confirmed", str(error))
        context = _merge_context(merge, survivor, form)
        return render(request, "customers/duplicates/merge_detail.html", context, status=409)
    except merging.MergeRefused as error:
        messages.error(request, str(error))
        return redirect(merge)
    messages.success(
        request,
        _("The merge was undone: %(name)s is back with its records.") % {"name": restored},
    )
    return redirect(restored)
