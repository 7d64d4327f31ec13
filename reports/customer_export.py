"""The customer list, as the user filtered it, as an export table."""

import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import QueryDict
from django.utils.translation import gettext as _

from accounts.permissions import can_export, visible_customers
from cims.crypto import DecryptionError
from customers.fields import Sealed
from customers.filters import DEFAULT_SORT, SORTS, CustomerFilter, sorted_customers
from customers.masking import mask_email, mask_phone
from customers.models import Customer, Source, Status
from reports.exports import Column, ExportRefused, Table

# Query parameters that do not describe which customers: paging and the export's own.
NOT_FILTERS = ("after", "before", "page", "size", "format", "sort")
FETCH_CHUNK = 2000


def query_dict(query):
    """The list's GET parameters from a stored {name: [values]} (or a QueryDict)."""
    if isinstance(query, QueryDict):
        return query.copy()
    data = QueryDict(mutable=True)
    for name, values in query.items():
        data.setlist(name, values if isinstance(values, list) else [values])
    return data


def stored_query(querydict):
    """A QueryDict as JSON a GeneratedFile's spec can keep."""
    return {name: querydict.getlist(name) for name in querydict if name not in ("format",)}


def filtered_customers(query, user):
    """The customers of the list with these filters that `user` may see now, and the filterset.

    Raises PermissionDenied without the export permission and ExportRefused for filters that
    are not valid (the list page shows why).
    """
    if not can_export(user):
        raise PermissionDenied(_("You may not export customers."))
    data = query_dict(query)
    customers = visible_customers(user).select_related("owner", "team")
    filterset = CustomerFilter(data, queryset=customers)
    if not filterset.is_valid():
        raise ExportRefused(_("Some filters are not valid; correct them on the customer list."))
    sort = sort_of(data)
    return sorted_customers(filterset.qs, sort).order_by(*SORTS[sort]), filterset


def sort_of(query):
    sort = query_dict(query).get("sort")
    return sort if sort in SORTS else DEFAULT_SORT


def describe_filters(filterset):
    """(label, value) of every filter set, as the user chose them."""
    described = []
    for name, field in filterset.form.fields.items():
        value = filterset.form.cleaned_data.get(name)
        if value in (None, "", [], ()) or (
            isinstance(value, slice) and not (value.start or value.stop)
        ):
            continue
        if isinstance(value, slice):
            shown = f"{_shown(value.start)} – {_shown(value.stop)}"
        elif isinstance(value, list | tuple):
            choices = dict(getattr(field, "choices", ()) or ())
            shown = ", ".join(str(choices.get(item, item)) for item in value)
        else:
            choices = dict(getattr(field, "choices", ()) or ()) if hasattr(field, "choices") else {}
            shown = str(choices.get(value, value)) if isinstance(value, str) else _shown(value)
        described.append((str(field.label or name), shown))
    return described


def _shown(value):
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    return str(value)


def _in_batches(queryset, order, fields):
    """`fields` of every row of `queryset` in `order`, read a batch at a time.

    Server-side cursors are off (cims/settings.py), so a plain iterator() would hold every row
    in memory at once; each batch starts after the last row of the one before, through the
    sort's index (keyset paging, as the list pages).
    """
    names = [name.lstrip("-") for name in order]
    descending = order[0].startswith("-")
    rows = queryset.values_list(*fields, *names).order_by(*order)
    last = None
    while True:
        batch = list((rows.filter(_after(names, last, descending)) if last else rows)[:FETCH_CHUNK])
        for row in batch:
            yield row[: len(fields)]
        if len(batch) < FETCH_CHUNK:
            return
        last = batch[-1][len(fields) :]


def _after(names, values, descending):
    """Rows strictly after `values` in the order of `names` (as cims.paging does)."""
    op = "lt" if descending else "gt"
    condition = Q(**{f"{names[-1]}__{op}": values[-1]})
    for name, value in zip(reversed(names[:-1]), reversed(values[:-1]), strict=True):
        condition = Q(**{f"{name}__{op}": value}) | (Q(**{name: value}) & condition)
    return Q(**{f"{names[0]}__{op}e": values[0]}) & condition


def _opened(name, value, pk):
    """The plaintext of an encrypted column read with values_list (a Sealed value)."""
    if type(value) is not Sealed:
        return value
    try:
        return Customer._meta.get_field(name).open(value.blob, pk)
    except DecryptionError:
        return ""  # as the list shows an unreadable value


def _person(username, first, last):
    """As User.display_name shows a person (Chinese names family name first)."""
    if last and first and not first.isascii():
        return f"{last}{first}"
    return f"{first} {last}".strip() or username or ""


def customer_table(query, user, *, title=None):
    queryset, filterset = filtered_customers(query, user)
    # Labels translated once, not once per row.
    statuses = {value: str(label) for value, label in Status.choices}
    sources = {value: str(label) for value, label in Source.choices}
    columns = [
        Column(_("Name"), width=14),
        Column(_("Company"), width=24),
        Column(_("Mobile phone"), width=14),
        Column(_("Email"), width=24),
        Column(_("Province"), width=10),
        Column(_("City"), width=10),
        Column(_("Status"), width=8),
        Column(_("Source channel"), width=10),
        Column(_("Tags"), width=16),
        Column(_("Owner"), width=12),
        Column(_("Team"), width=12),
        Column(_("Created at"), "datetime"),
        Column(_("Updated at"), "datetime"),
    ]
    fields = (
        *("id", "display_name", "company", "phone", "email", "province", "city", "status"),
        *("source", "tags", "owner__username", "owner__first_name", "owner__last_name"),
        *("team__name", "created_at", "updated_at"),
    )

    def rows():
        # Phone and email masked as the list shows them: revealing one is a single, audited act.
        for (pk, name, company, phone, email, province, city, status, source, tags, username,
             first, last, team, created, updated) in _in_batches(
            queryset, SORTS[sort_of(query)], fields
        ):  # fmt: skip
            yield (
                name, company, mask_phone(_opened("phone", phone, pk)),
                mask_email(_opened("email", email, pk)), province, city,
                statuses.get(status, status), sources.get(source, source), "; ".join(tags or ()),
                _person(username, first, last), team or "", created, updated,
            )  # fmt: skip

    return Table(
        title=title or _("Customers"),
        columns=columns,
        rows=rows(),
        filters=describe_filters(filterset),
        row_count=queryset.count(),
    )
