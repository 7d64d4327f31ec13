"""Keyset ("cursor") paging and bounded counting for lists that reach millions of rows.

OFFSET paging reads and throws away every row before the page, so page 5,000 costs hundreds of
milliseconds; a keyset page starts from the last row of the previous one through an index and
costs the same at any depth. Counting is bounded the same way: exact up to a limit, the query
planner's estimate beyond it.
"""

import base64
import binascii
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.db.models.functions import Coalesce


class BadCursor(ValueError):
    """A page link that was altered or belongs to another sort order."""


@dataclass
class Page:
    items: list
    next_cursor: str | None
    previous_cursor: str | None


def _encode(values):
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token, fields):
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise BadCursor(token) from error
    # _encode writes strings only; PostgreSQL text cannot hold a NUL character.
    if (
        not isinstance(values, list)
        or len(values) != len(fields)
        or not all(isinstance(value, str) and "\x00" not in value for value in values)
    ):
        raise BadCursor(token)
    try:
        return [field.to_python(value) for field, value in zip(fields, values, strict=True)]
    except (ValidationError, TypeError) as error:
        raise BadCursor(token) from error


def _beyond(names, values, descending):
    """Rows strictly after `values` in the order of `names` (all ascending or all descending).

    The leading `first <= value` (or `>=`) is implied by the rest, but written out it gives
    PostgreSQL an index range to scan instead of a filter over every earlier row.
    """
    op = "lt" if descending else "gt"
    condition = Q(**{f"{names[-1]}__{op}": values[-1]})
    for name, value in zip(reversed(names[:-1]), reversed(values[:-1]), strict=True):
        condition = Q(**{f"{name}__{op}": value}) | (Q(**{name: value}) & condition)
    return Q(**{f"{names[0]}__{op}e": values[0]}) & condition


def keyset_page(queryset, *, order, size, after=None, before=None, sort=False):
    """One page of `queryset` in `order` (field names, all with or all without a leading "-").

    The last field must be unique (the primary key); the others may be annotations of
    `queryset`. `after` and `before` are cursors taken from a previous Page; at most one is
    given.

    With `sort`, PostgreSQL sorts the matching rows instead of walking the index of `order`
    until a page of them turns up: the better plan when a few thousand rows match a condition
    that index cannot check (a search), which the planner's estimates cannot tell it reliably.
    """
    descending = order[0].startswith("-")
    names = [name.lstrip("-") for name in order]
    fields = [_field(queryset, name) for name in names]
    reverse = [("" if descending else "-") + name for name in names]

    if before:
        earlier = queryset.filter(_beyond(names, _decode(before, fields), not descending))
        rows = list(earlier.order_by(*_ordering(reverse, sort))[: size + 1])
        has_more_before, rows = len(rows) > size, rows[:size][::-1]
        has_more_after = True
    else:
        if after:
            queryset = queryset.filter(_beyond(names, _decode(after, fields), descending))
        rows = list(queryset.order_by(*_ordering(order, sort))[: size + 1])
        has_more_after, rows = len(rows) > size, rows[:size]
        has_more_before = bool(after)

    def cursor(row):
        return _encode(getattr(row, name) for name in names)

    return Page(
        items=rows,
        next_cursor=cursor(rows[-1]) if rows and has_more_after else None,
        previous_cursor=cursor(rows[0]) if rows and has_more_before else None,
    )


def _field(queryset, name):
    """The model field, or the annotation's output field, that `name` sorts on."""
    annotation = queryset.query.annotations.get(name)
    return (
        annotation.output_field if annotation is not None else queryset.model._meta.get_field(name)
    )


# An estimate at least twice the limit and at least this large is shown without counting: it is
# then far past the limit. With the search columns' large statistics sample (migration 0002) such
# estimates are rarely a quarter off; small ones, and any for a table PostgreSQL has not analyzed
# yet, can be several times off.
TRUSTED_ESTIMATE = 20_000


def _ordering(order, sort):
    """`order` for order_by(); with `sort`, its first field in a form no index provides."""
    if not sort:
        return order
    first, *rest = order
    name = first.lstrip("-")
    # COALESCE(x, x) sorts exactly as x does, but PostgreSQL cannot read it from an index on x.
    expression = Coalesce(F(name), F(name))
    return [expression.desc() if first.startswith("-") else expression.asc(), *rest]


def count_matches(queryset, *, limit):
    """(count, is_estimate): exact up to `limit` rows, PostgreSQL's estimate beyond.

    The planner is asked first: counting up to the limit reads that many rows, tens of
    milliseconds for a common name, and when the estimate is far beyond the limit the count
    could only confirm that there are more.
    """
    queryset = queryset.order_by().values("pk")
    plan = json.loads(queryset.explain(format="json"))
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if estimate >= max(2 * limit, TRUSTED_ESTIMATE):
        return estimate, True
    exact = queryset[: limit + 1].count()
    if exact <= limit:
        return exact, False
    return max(limit + 1, estimate), True
