import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit, permissions
from accounts.permissions import (
    can,
    can_bulk_change,
    can_create_customer,
    can_list_customers,
    can_share,
    can_view_sensitive,
    get_customer_for,
    visible_customers,
)
from cims.paging import BadCursor, count_matches, keyset_page
from customers import consents, places
from customers.filters import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_SORT,
    PAGE_SIZES,
    SORTS,
    ArchivedCustomerFilter,
    CustomerFilter,
    include_archive,
    sorted_customers,
)
from customers.forms import (
    BulkActionForm,
    ConsentForm,
    CustomerForm,
    InteractionForm,
    OrderForm,
    OrderLineFormSet,
    SavedViewForm,
    ShareForm,
)
from customers.masking import SENSITIVE_FIELDS
from customers.models import (
    ArchivedCustomer,
    BulkAction,
    Customer,
    CustomField,
    SavedView,
    Source,
    Tag,
)
from customers.phones import normalize_phone
from customers.search import normalize_email
from customers.tasks import run_bulk_action

# What a row of the list shows, and every column a sort (and so a page link) needs.
LIST_FIELDS = [
    *("id", "display_name", "company", "phone", "email", "city", "status", "tags"),
    *("created_at", "updated_at", "name_pinyin", "owner"),
    *("owner__username", "owner__first_name", "owner__last_name"),
]

# Query parameters that move through a list rather than describe it.
PAGING_PARAMS = ("after", "before", "page", "archive_after")


def list_query(request):
    """The list's search, filters, sort and page size, without the paging position."""
    query = request.GET.copy()
    for name in PAGING_PARAMS:
        query.pop(name, None)
    return query


def _page_number(request):
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


# Up to this many search matches are sorted for a page; beyond, walking the sort order's index
# past the customers who do not match is quicker.
SORTED_SEARCH_MATCHES = 4000


def _few_search_matches(filterset, count):
    """Whether a search's matches (counted, or estimated by PostgreSQL) are few enough to sort."""
    return bool(filterset.form.cleaned_data.get("q")) and count <= SORTED_SEARCH_MATCHES


@require_GET
def customer_list(request):
    if not can_list_customers(request.user):
        raise PermissionDenied
    customers = visible_customers(request.user).select_related("owner").only(*LIST_FIELDS)
    filterset = CustomerFilter(request.GET, queryset=customers, request=request)
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else DEFAULT_SORT
    # Matched as text: int() refuses some digits that isdigit() accepts ("²") and long numbers.
    size = {str(n): n for n in PAGE_SIZES}.get(request.GET.get("size"), DEFAULT_PAGE_SIZE)
    context = {
        "filter": filterset,
        "include_archive": include_archive(request.GET),
        "sort": sort,
        "size": size,
        "page_sizes": PAGE_SIZES,
        "query": list_query(request),
        "saved_views": request.user.saved_views.all(),
        "bulk_actions": BulkAction.Action.choices if can_bulk_change(request.user) else None,
        "can_create": can_create_customer(request.user),
        "tag_suggestions": Tag.objects.values_list("name", flat=True)[:500],
        "provinces": places.PROVINCES,
    }
    if not filterset.is_valid():
        return render(request, "customers/customer_list.html", context, status=400)
    limit = settings.CUSTOMER_LIST_EXACT_COUNT_LIMIT
    count, estimated = count_matches(filterset.qs, limit=limit)
    try:
        page = keyset_page(
            sorted_customers(filterset.qs, sort),
            order=SORTS[sort],
            size=size,
            after=request.GET.get("after"),
            before=request.GET.get("before"),
            sort=_few_search_matches(filterset, count),
        )
    except BadCursor:
        raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
    number = _page_number(request)
    if include_archive(request.GET):
        context["archive"] = _archive_section(request)
    # Past the limit with an estimate below it, all that is known is "more than the limit".
    context.update(
        page=page, page_number=number, count=count, estimated=estimated, count_limit=limit
    )
    template = "customers/customer_list.html"
    if request.htmx and request.htmx.target == "results":
        template += "#results"
    return render(request, template, context)


# Archived customers matching the list's search and filters are shown below the live ones, a
# page at a time in name order: a section of its own, so the live list's keyset paging and
# counts stay exactly what they were.
ARCHIVE_PAGE_SIZE = 25
ARCHIVE_LIST_FIELDS = [
    *("id", "display_name", "company", "city", "status", "name_pinyin", "archived_at", "owner"),
    *("owner__username", "owner__first_name", "owner__last_name"),
]


def _archive_section(request):
    archived = (
        ArchivedCustomer.objects.visible_to(request.user)
        .select_related("owner")
        .only(*ARCHIVE_LIST_FIELDS)
    )
    filterset = ArchivedCustomerFilter(request.GET, queryset=archived, request=request)
    unsupported = filterset.unsupported()
    if unsupported or not filterset.is_valid():
        return {"unsupported": unsupported}
    count, estimated = count_matches(filterset.qs, limit=settings.CUSTOMER_LIST_EXACT_COUNT_LIMIT)
    try:
        page = keyset_page(
            filterset.qs,
            order=("name_pinyin", "id"),
            size=ARCHIVE_PAGE_SIZE,
            after=request.GET.get("archive_after"),
            sort=_few_search_matches(filterset, count),
        )
    except BadCursor:
        raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
    return {"page": page, "count": count, "estimated": estimated}


@require_GET
def customer_detail(request, pk):
    try:
        customer = get_customer_for(request.user, pk, "view")
    except Http404:
        # Links to a customer archived since (bookmarks, the audit trail) lead to the archive.
        archived = permissions.visible_archived_customers(request.user).filter(pk=pk).first()
        if archived is None:
            raise
        return redirect(archived)
    before = _timeline_cursor(request.GET.get("before"))
    entries, more = customer.timeline(before=before, limit=20)
    context = {
        "customer": customer,
        "entries": entries,
        "more_cursor": f"{entries[-1].occurred.isoformat()}|{entries[-1].pk}" if more else None,
        "can_change": can(request.user, "change", customer),
        "can_delete": can(request.user, "delete", customer),
        "can_erase": permissions.can_erase(request.user, customer) and not customer.erasure,
    }
    if request.htmx and request.htmx.target == "timeline-more":
        return render(request, "customers/customer_detail.html#timeline", context)
    see_access = permissions.can_see_access(request.user, customer)
    context.update(
        summary=customer.order_summary(),
        consent_states=consents.overview(customer),
        consent_sources=Source.choices,
        can_export_data=permissions.can_export_customer_data(request.user, customer),
        attributes=attribute_rows(customer),
        country=places.country_name(customer.country),
        # Values revealed by the POST that redirected here: shown once, recorded then.
        revealed=request.session.pop(_revealed_key(customer), []),
        can_share=can_share(request.user, customer),
        access=permissions.access_list(customer) if see_access else None,
        history=audit.customer_history(customer) if see_access or context["can_change"] else None,
        waiting_changes=_waiting_changes(request.user, customer, context["can_change"]),
    )
    if context["can_share"]:
        context["shares"] = permissions.customer_shares(customer)
        context["share_form"] = ShareForm(customer=customer)
    context.update(_duplicate_context(request.user, customer, context["can_change"]))
    return render(request, "customers/customer_detail.html", context)


def _duplicate_context(user, customer, can_change):
    """Possible duplicates and undoable merges, for those who may merge (indexed reads)."""
    from customers import duplicates

    if not (can_change and permissions.can_merge(user)):
        return {}
    return {
        "can_merge": True,
        "possible_duplicates": duplicates.count_for_customer(user, customer),
        "merges": duplicates.undoable_merges_into(customer),
    }


def _waiting_changes(user, customer, can_change):
    """How many submitted values wait for review, for those who may decide them (one count on
    an indexed column)."""
    from intake.models import ProposedChange

    if not (can_change and user.has_perm("intake.review_submission")):
        return 0
    return ProposedChange.objects.filter(customer=customer, decision="").count()


def _revealed_key(customer):
    return f"revealed:{customer.pk}"


@require_POST
def customer_reveal(request, pk, field):
    """Show one sensitive value of a customer, and record that it was shown."""
    customer = get_customer_for(request.user, pk, "view")
    if field not in SENSITIVE_FIELDS:
        raise Http404
    if not can_view_sensitive(request.user):
        raise PermissionDenied
    audit.record(audit.Action.REVEAL, target=customer, data={"field": field})
    if request.htmx:
        context = {"customer": customer, "field": field, "value": getattr(customer, field)}
        return render(request, "customers/sensitive_value.html", {**context, "revealed": True})
    request.session[_revealed_key(customer)] = [field]
    return redirect(customer.get_absolute_url() + f"#sensitive-{field}")


@require_POST
def customer_share(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    if not can_share(request.user, customer):
        raise PermissionDenied
    form = ShareForm(request.POST, customer=customer)
    if form.is_valid():
        subject, level = form.cleaned_data["subject"], form.cleaned_data["level"]
        with transaction.atomic():
            permissions.share(customer, subject, level)
            audit.record(
                audit.Action.PERMISSION_GRANT,
                target=customer,
                data={"with": str(subject), "kind": form.cleaned_data["kind"], "level": level},
            )
        messages.success(
            request,
            _("%(customer)s is shared with %(subject)s.")
            % {"customer": customer, "subject": subject},
        )
    else:
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
    return redirect(customer.get_absolute_url() + "#sharing")


@require_POST
def customer_unshare(request, pk, kind, share_pk):
    customer = get_customer_for(request.user, pk, "change")
    if not can_share(request.user, customer):
        raise PermissionDenied
    with transaction.atomic():
        withdrawn = permissions.withdraw_share(customer, kind, share_pk)
        if withdrawn is None:
            raise Http404
        audit.record(
            audit.Action.PERMISSION_REVOKE,
            target=customer,
            data={"with": str(withdrawn.subject), "kind": kind, "level": withdrawn.level},
        )
    messages.success(
        request,
        _("%(subject)s no longer has access through this share.") % {"subject": withdrawn.subject},
    )
    return redirect(customer.get_absolute_url() + "#sharing")


def _timeline_cursor(raw):
    """The (time, id) after which a timeline page starts, from "?before=<time>|<id>"."""
    if not raw:
        return None
    moment, _sep, pk = raw.partition("|")
    try:
        moment = parse_datetime(moment)
    except ValueError:
        moment = None
    pk = _uuid_or_none(pk)
    if moment is None or pk is None:
        raise BadRequest(_("This page link is not valid."))
    return moment, pk


def attribute_rows(customer):
    """(label, value) of the custom attributes of a customer, live or archived, in the
    administrator's order."""
    rows = []
    for definition in CustomField.objects.all():
        if definition.key in customer.attributes:
            value = customer.attributes[definition.key]
            if isinstance(value, bool):
                value = _("Yes") if value else _("No")
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            rows.append((definition.display_label, value))
    return rows


@require_http_methods(["GET", "POST"])
def customer_create(request):
    if not can_create_customer(request.user):
        raise PermissionDenied
    form = CustomerForm(request.POST or None, user=request.user, initial={"owner": request.user})
    if request.method == "POST" and form.is_valid():
        customer = form.save(commit=False)
        customer.created_by = customer.updated_by = request.user
        try:
            with transaction.atomic():
                customer.save()
                Tag.remember(customer.tags)
                audit.record(
                    audit.Action.CUSTOMER_CREATE,
                    target=customer,
                    data={"changes": audit.changes({}, _audited_values(form, customer))},
                )
        except IntegrityError:
            form.add_error(
                None, _("Another customer was saved with the same email or phone just now.")
            )
        else:
            messages.success(request, _("Customer %(name)s created.") % {"name": customer})
            return redirect(customer)
    return render(request, "customers/customer_form.html", _form_context(form))


@require_http_methods(["GET", "POST"])
def customer_edit(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    form = CustomerForm(request.POST or None, instance=customer, user=request.user)
    # Compared over the form's own fields: those it leaves out (sensitive ones, for some users)
    # are neither read nor changed.
    before = _audited_values(form, customer)
    if request.method == "GET":
        # The form shows the sensitive values in clear, so opening it is a recorded reveal.
        if shown := [f for f in SENSITIVE_FIELDS if f in form.fields and before.get(f)]:
            audit.record(audit.Action.REVEAL, target=customer, data={"fields": shown})
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                saved = form.instance.save_if_unchanged(
                    expected_version=form.cleaned_data["version"], user=request.user
                )
                if saved and (changes := audit.changes(before, _audited_values(form, customer))):
                    audit.record(
                        audit.Action.CUSTOMER_UPDATE, target=customer, data={"changes": changes}
                    )
        except IntegrityError:
            form.add_error(
                None, _("Another customer was saved with the same email or phone just now.")
            )
        else:
            if saved:
                messages.success(request, _("Changes to %(name)s saved.") % {"name": customer})
                return redirect(customer)
            latest = Customer.objects.select_related("updated_by").get(pk=pk)
            form.add_error(
                None,
                _(
                    "%(user)s changed this customer after you opened it. Your changes were not "
                    "saved: reload the page to see theirs, then make yours again."
                )
                % {"user": latest.updated_by or _("Someone")},
            )
            return render(request, "customers/customer_form.html", _form_context(form), status=409)
    return render(request, "customers/customer_form.html", _form_context(form))


def _audited_values(form, customer):
    """The values of the fields the edit form can change, as the audit trail compares them."""
    values = {name: getattr(customer, name) for name in form.fields if hasattr(customer, name)}
    # Custom attributes are edited as attr_* form fields but stored in one JSON value.
    values.pop("version", None)
    for key, value in customer.attributes.items():
        values[f"attributes.{key}"] = value
    for name in ("owner", "team"):
        values[name] = str(getattr(customer, name) or "")
    return values


def _form_context(form):
    return {
        "form": form,
        "customer": None if form.instance._state.adding else form.instance,
        "provinces": places.PROVINCES,
        "tag_suggestions": Tag.objects.values_list("name", flat=True)[:500],
    }


@require_http_methods(["GET", "POST"])
def customer_delete(request, pk):
    customer = get_customer_for(request.user, pk, "delete")
    if request.method == "POST":
        with transaction.atomic():
            audit.record(
                audit.Action.CUSTOMER_DELETE,
                target=customer,
                data={"name": customer.display_name},
            )
            Customer.objects.filter(pk=customer.pk).delete_archived_history()
            customer.delete()
        messages.success(request, _("Customer %(name)s deleted.") % {"name": customer})
        return redirect("customers:list")
    return render(request, "customers/customer_confirm_delete.html", {"customer": customer})


@require_GET
def duplicate_hint(request):
    """Customers the user can see that already have the email or phone typed into a form."""
    if not can_list_customers(request.user):
        raise PermissionDenied
    email = normalize_email(request.GET.get("email", ""))[:254]
    try:
        # Only a well-formed address can match, and a malformed one (say, with a NUL
        # character, which PostgreSQL cannot compare) must not reach the database.
        validate_email(email)
    except ValidationError:
        email = ""
    phone = normalize_phone(request.GET.get("phone", "")[:50])
    condition = Customer.contact_q(email=email, phone=phone)
    matches = visible_customers(request.user).filter(condition)
    if exclude := _uuid_or_none(request.GET.get("exclude")):
        matches = matches.exclude(pk=exclude)
    return render(request, "customers/duplicate_hint.html", {"matches": matches[:5]})


def _uuid_or_none(value):
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None


@require_http_methods(["GET", "POST"])
def interaction_create(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    form = InteractionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        interaction = form.save(commit=False)
        interaction.customer, interaction.created_by = customer, request.user
        interaction.save()
        messages.success(request, _("Interaction added."))
        return redirect(customer)
    return render(
        request,
        "customers/record_form.html",
        {"customer": customer, "form": form, "heading": _("Add interaction")},
    )


@require_http_methods(["GET", "POST"])
def order_create(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    lines = OrderLineFormSet(request.POST or None, prefix="lines")
    form = OrderForm(request.POST or None, lines=lines)
    form.instance.customer = customer
    if request.method == "POST" and lines.is_valid() and form.is_valid():
        try:
            with transaction.atomic():
                form.save()
        except IntegrityError:
            form.add_error("external_id", _("An order with this number already exists."))
        else:
            messages.success(request, _("Order %(number)s added.") % {"number": form.instance})
            return redirect(customer)
    return render(
        request,
        "customers/order_form.html",
        {
            "customer": customer,
            "form": form,
            "lines": lines,
            "currencies": places.CURRENCIES,
            "heading": _("Add order"),
        },
    )


@require_http_methods(["GET", "POST"])
def consent_create(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    form = ConsentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        consents.record_consent(customer=customer, recorded_by=request.user, **form.cleaned_data)
        messages.success(request, _("Consent recorded."))
        return redirect(customer)
    return render(
        request,
        "customers/record_form.html",
        {"customer": customer, "form": form, "heading": _("Record consent")},
    )


@require_POST
def bulk_action(request):
    """Confirm, then apply, one change to the chosen or to every matching customer."""
    if not can_bulk_change(request.user):
        raise PermissionDenied
    form = BulkActionForm(request.POST)
    back = reverse("customers:list") + "?" + request.POST.get("query", "")
    if not form.is_valid():
        for error in form.errors.get("__all__", []):
            messages.error(request, error)
        if "__all__" in form.errors:
            return redirect(back)
        return render(
            request, "customers/bulk_confirm.html", {"form": form, "back": back}, status=400
        )
    bulk = form.bulk_action(user=request.user)
    total = bulk.targets().count()
    if not form.cleaned_data["confirmed"]:
        return render(
            request,
            "customers/bulk_confirm.html",
            {"form": form.confirmation(), "bulk": bulk, "total": total, "back": back},
        )
    bulk.total = total
    with transaction.atomic():
        bulk.save()
        audit.record(
            audit.Action.BULK_ACTION,
            target=bulk,
            data={
                "action": bulk.action,
                "params": bulk.params,
                "filter": bulk.query,
                "chosen": len(bulk.customer_ids or []),
                "rows": total,
            },
        )
    if total <= settings.BULK_ACTION_INLINE_LIMIT:
        bulk.run()
        messages.success(
            request,
            ngettext(
                "%(action)s: %(count)d customer changed.",
                "%(action)s: %(count)d customers changed.",
                bulk.changed,
            )
            % {"action": bulk.get_action_display(), "count": bulk.changed},
        )
        return redirect(back)
    transaction.on_commit(lambda: run_bulk_action.delay(str(bulk.pk)))
    return redirect(bulk)


@require_GET
def bulk_progress(request, pk):
    bulk = get_object_or_404(BulkAction, pk=pk, user=request.user)
    template = "customers/bulk_progress.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, {"bulk": bulk})


@require_POST
def saved_view_create(request):
    if not can_list_customers(request.user):
        raise PermissionDenied
    form = SavedViewForm(request.POST, user=request.user)
    # A NUL character cannot be stored in PostgreSQL text, and no list query needs one.
    query = request.POST.get("query", "")[:4000].replace("\x00", "")
    if form.is_valid():
        view = form.save(commit=False)
        view.user, view.query = request.user, query
        view.save()
        messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
        return redirect(view)
    for error in form.errors.get("name", []):
        messages.error(request, error)
    return redirect(reverse("customers:list") + (f"?{query}" if query else ""))


@require_POST
def saved_view_rename(request, pk):
    view = get_object_or_404(SavedView, pk=pk, user=request.user)
    form = SavedViewForm(request.POST, instance=view, user=request.user)
    if form.is_valid():
        form.save()
        messages.success(request, _("View renamed to “%(name)s”.") % {"name": view.name})
    else:
        for error in form.errors.get("name", []):
            messages.error(request, error)
    return redirect("customers:saved_views")


@require_POST
def saved_view_delete(request, pk):
    view = get_object_or_404(SavedView, pk=pk, user=request.user)
    view.delete()
    messages.success(request, _("View “%(name)s” deleted.") % {"name": view.name})
    return redirect("customers:saved_views")


@require_GET
def saved_view_list(request):
    if not can_list_customers(request.user):
        raise PermissionDenied
    views = request.user.saved_views.all()
    return render(request, "customers/saved_views.html", {"views": views})
