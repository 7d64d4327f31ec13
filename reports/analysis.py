"""The pivot: customers counted and summed by one or two dimensions, in set-based SQL.

The customers are those the user may see (`Customer.objects.visible_to`) narrowed by the
customer list's filters (customers.filters.CustomerFilter), so a pivot always agrees with the
list its cells link to. Purchase figures come from reports.models.CustomerMetrics (orders and
revenue per customer, kept current by triggers): a customer without a metrics row has none.

One query does it all. Its inner part groups the customers by the two dimensions (PostgreSQL
runs it with parallel workers); its outer part adds the row, column and grand totals over those
cells with GROUPING SETS. Every measure is a ratio of three sums (customers, orders, revenue),
so totals of averages are computed from the summed parts, never averaged averages.

Tags are the exception to "a customer is in one cell": a customer counts under each of its
tags. The cells of a tag dimension are counted from one row per (customer, tag); a total that
runs across tags must count each customer once, so each customer's first tag row also carries
its figures in separate "first" sums, and totals over tags add up only those (a customer's tags
are distinct: the forms and imports keep them so).
"""

import datetime
import time
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import CharField, DateTimeField, F, Func, IntegerField, Value
from django.db.models.functions import Cast, Coalesce, NullIf, Trunc
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from accounts.models import Team
from customers.filters import CustomerFilter
from customers.models import Customer, Gender, Source, Status

MAX_COLUMNS = 30
CHART_CATEGORIES = 30
CHART_SERIES = 8
# Parameters of the pivot itself; every other GET parameter is a customer list filter.
PIVOT_PARAMS = ("rows", "cols", "measure", "format")


def _zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class Dimension:
    key: str
    label: object
    expression: object  # callable -> a Django expression over Customer (NULL = no value)
    kind: str = "value"  # "value" | "choice" | "period" | "tag" | "user" | "team"
    param: str = ""  # the customer list filter that selects one value
    choices: object = None  # callable -> [(value, label)] for "choice", in display order
    period: str = ""  # "month" | "quarter" | "year"
    metrics: bool = False  # needs the customer's metrics row
    none_param: tuple = ()  # the filter selecting customers without a value, if there is one
    largest_first: bool = False  # a choice dimension shown largest first, not in choice order


def _empty_as_null(field):
    return lambda: NullIf(F(field), Value(""))


def _period(field, period):
    # The period's start as a local time; the pivot turns its keys into dates. Spelt exactly as
    # the statistics objects of reports/migrations/0005 are, which tell the planner how few
    # periods there are, so that it groups them with parallel workers.
    return lambda: Trunc(field, period, output_field=DateTimeField(), tzinfo=_zone())


def _tag():
    # One row per tag; a customer without tags gives one row without a tag.
    return Func(
        F("tags"),
        template=(
            "unnest(CASE WHEN cardinality(%(expressions)s) = 0 THEN ARRAY[NULL]::varchar[] "
            "ELSE %(expressions)s END)"
        ),
        output_field=CharField(),
    )


def _age_band():
    from reports.metrics import age_band_expression

    return age_band_expression()


def _age_bands():
    from reports.metrics import AGE_BAND_CHOICES

    return AGE_BAND_CHOICES


def _segments():
    from reports.metrics import SEGMENT_ORDER
    from reports.models import Segment

    labels = dict(Segment.choices)
    return [(value, labels[value]) for value in SEGMENT_ORDER]


def dimensions():
    """The dimensions by key, built when asked for (their labels are translated then)."""
    periods = {
        "month": gettext_lazy("month"),
        "quarter": gettext_lazy("quarter"),
        "year": gettext_lazy("year"),
    }
    dims = [
        Dimension(
            "source",
            gettext_lazy("Channel"),
            lambda: F("source"),
            "choice",
            "source",
            choices=lambda: Source.choices,
            largest_first=True,
        ),
        Dimension(
            "province",
            gettext_lazy("Province"),
            _empty_as_null("province"),
            param="province",
            none_param=("province", "none"),
        ),
        Dimension(
            "city",
            gettext_lazy("City"),
            _empty_as_null("city"),
            param="city",
            none_param=("city", "none"),
        ),
        Dimension(
            "status",
            gettext_lazy("Status"),
            lambda: F("status"),
            "choice",
            "status",
            choices=lambda: Status.choices,
        ),
        Dimension("tag", gettext_lazy("Tag"), _tag, "tag", "tags"),
        Dimension(
            "owner",
            gettext_lazy("Owner"),
            lambda: F("owner_id"),
            "user",
            "owner",
            none_param=("owner", "none"),
        ),
        Dimension(
            "team",
            gettext_lazy("Team"),
            lambda: F("team_id"),
            "team",
            "team",
            none_param=("team", "none"),
        ),
        Dimension(
            "gender",
            gettext_lazy("Gender"),
            _empty_as_null("gender"),
            "choice",
            "gender",
            choices=lambda: [c for c in Gender.choices if c[0]],
            none_param=("gender", "none"),
        ),
        Dimension(
            "age_band",
            gettext_lazy("Age band"),
            _age_band,
            "choice",
            "age_band",
            choices=_age_bands,
        ),
        Dimension(
            "segment",
            gettext_lazy("RFM segment"),
            lambda: F("metrics__segment"),
            "choice",
            "segment",
            choices=_segments,
            metrics=True,
            none_param=("segment", "none"),
        ),
    ]
    for period, name in periods.items():
        dims.append(
            Dimension(
                f"first_purchase_{period}",
                _Joined(gettext_lazy("First purchase"), name),
                _period("metrics__first_order_at", period),
                "period",
                "first_purchase",
                period=period,
                metrics=True,
                none_param=("has_orders", "false"),
            )
        )
    for period, name in periods.items():
        dims.append(
            Dimension(
                f"created_{period}",
                _Joined(gettext_lazy("Sign-up"), name),
                _period("created_at", period),
                "period",
                "created",
                period=period,
            )
        )
    return {d.key: d for d in dims}


class _Joined:
    """“Sign-up: month”, translated when shown."""

    def __init__(self, *parts):
        self.parts = parts

    def __str__(self):
        return ": ".join(str(p) for p in self.parts)


@dataclass(frozen=True)
class Measure:
    key: str
    label: object
    kind: str  # the export column kind
    metrics: bool
    help: object = ""

    def value(self, customers, orders, revenue):
        """The measure of a cell from its three sums."""
        if self.key == "customers":
            return customers
        if self.key == "orders":
            return orders
        if self.key == "revenue":
            return revenue
        if self.key == "average_order_value":
            return _ratio(revenue, orders)
        if self.key == "purchase_frequency":
            return _ratio(Decimal(orders), customers)
        return _ratio(revenue, customers)  # lifetime value


def _ratio(numerator, denominator):
    if not denominator:
        return None
    return (Decimal(numerator) / denominator).quantize(Decimal("0.01"))


MEASURES = {
    m.key: m
    for m in [
        Measure("customers", gettext_lazy("Customers"), "integer", False),
        Measure("orders", gettext_lazy("Orders"), "integer", True),
        Measure("revenue", gettext_lazy("Revenue"), "money", True),
        Measure(
            "average_order_value",
            gettext_lazy("Average order value"),
            "money",
            True,
            gettext_lazy("Revenue divided by orders."),
        ),
        Measure(
            "purchase_frequency",
            gettext_lazy("Purchase frequency"),
            "decimal",
            True,
            gettext_lazy("Orders per customer; customers without orders count as none."),
        ),
        Measure(
            "lifetime_value",
            gettext_lazy("Lifetime value"),
            "money",
            True,
            gettext_lazy("Historical: revenue per customer, customers without orders included."),
        ),
    ]
}


class PivotForm(forms.Form):
    rows = forms.ChoiceField(label=pgettext_lazy("pivot dimension", "Rows"))
    cols = forms.ChoiceField(label=gettext_lazy("Columns"), required=False)
    measure = forms.ChoiceField(label=gettext_lazy("Measure"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(d.key, str(d.label)) for d in dimensions().values()]
        self.fields["rows"].choices = choices
        self.fields["cols"].choices = [("", _("(none)")), *choices]
        self.fields["measure"].choices = [(m.key, str(m.label)) for m in MEASURES.values()]

    def clean_measure(self):
        return self.cleaned_data.get("measure") or "customers"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("rows") and cleaned.get("rows") == cleaned.get("cols"):
            self.add_error("cols", _("Choose two different dimensions."))
        return cleaned


# --- The query ----------------------------------------------------------------------------


def customer_filter(params, user):
    """The customer list's filters over the customers `user` may see."""
    data = params.copy() if hasattr(params, "copy") else dict(params)
    for name in PIVOT_PARAMS:
        data.pop(name, None)
    return CustomerFilter(data, queryset=Customer.objects.visible_to(user))


@dataclass
class Cell:
    customers: int
    orders: int
    revenue: Decimal
    value: object  # the measure
    link: str = ""


@dataclass
class Pivot:
    rows_dimension: Dimension
    cols_dimension: Dimension | None
    measure: Measure
    row_keys: list  # dimension values, None for "no value"
    col_keys: list
    row_labels: list
    col_labels: list
    cells: dict  # (row key, col key) -> Cell
    row_totals: dict  # row key -> Cell
    col_totals: dict  # col key -> Cell
    total: Cell
    hidden_rows: int = 0
    hidden_cols: int = 0
    filters: list = None  # (label, value) pairs
    seconds: float = 0.0

    def table_rows(self):
        """The rows for a template: (label, total cell, [cells])."""
        for key, label in zip(self.row_keys, self.row_labels, strict=True):
            cells = [self.cells.get((key, col)) for col in self.col_keys]
            yield label, self.row_totals[key], cells

    def column_totals(self):
        return [self.col_totals[key] for key in self.col_keys]


def _compile(queryset):
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def pivot_sql(queryset, rows, cols, measure):
    """The SQL and parameters of a pivot over `queryset` (customers already filtered)."""
    needs_metrics = measure.metrics or rows.metrics or (cols is not None and cols.metrics)
    tagged = rows.kind == "tag" or (cols is not None and cols.kind == "tag")
    annotations = {"d1": rows.expression()}
    if cols is not None:
        annotations["d2"] = cols.expression()
    if needs_metrics:
        annotations["o"] = Coalesce(F("metrics__orders"), Value(0), output_field=IntegerField())
        annotations["r"] = Coalesce(F("metrics__revenue"), Value(Decimal(0)))
    if tagged:
        annotations["t1"] = Cast(Func(F("tags"), template="%(expressions)s[1]"), CharField())
    base = queryset.order_by().annotate(**annotations).values(*annotations)
    inner_sql, params = _compile(base)

    dims = ["d1"] if cols is None else ["d1", "d2"]
    tag_dim = next(
        (name for name, dim in zip(dims, [rows, cols], strict=False) if dim.kind == "tag"), None
    )
    orders, revenue = ("sum(o)", "sum(r)") if needs_metrics else ("0", "0")
    parts = [f"count(*) AS n, {orders} AS o, {revenue} AS r"]
    if tag_dim:
        first = f"{tag_dim} IS NOT DISTINCT FROM t1"
        parts.append(
            f"count(*) FILTER (WHERE {first}) AS n1, "
            + (
                f"sum(o) FILTER (WHERE {first}) AS o1, sum(r) FILTER (WHERE {first}) AS r1"
                if needs_metrics
                else "0 AS o1, 0 AS r1"
            )
        )
    else:
        parts.append("count(*) AS n1, 0 AS o1, 0 AS r1")
    group = ", ".join(dims)
    sets = "(d1, d2), (d1), (d2), ()" if cols is not None else "(d1), ()"
    sql = (
        f"WITH cells AS MATERIALIZED (SELECT {group}, {', '.join(parts)} "
        f"FROM ({inner_sql}) base GROUP BY {group}) "
        f"SELECT {group}, GROUPING({group}) AS g, sum(n), sum(o), sum(r), "
        f"sum(n1), sum(o1), sum(r1) FROM cells GROUP BY GROUPING SETS ({sets})"
    )
    return sql, params, tag_dim


def run_pivot(params, user):
    """The pivot the GET parameters `params` ask for, over what `user` may see.

    Returns (form, filterset, Pivot or None); the pivot is None while the form is invalid.
    """
    form = PivotForm(params or None, initial={"measure": "customers"})
    filterset = customer_filter(params or {}, user)
    if not form.is_valid():
        return form, filterset, None
    dims = dimensions()
    rows = dims[form.cleaned_data["rows"]]
    cols = dims.get(form.cleaned_data.get("cols") or "")
    measure = MEASURES[form.cleaned_data["measure"]]
    started = time.monotonic()
    customers = filterset.qs
    if customers.query.distinct:
        # A filter over a many-valued relation asked for DISTINCT, which would merge the
        # pivot's rows of different customers: keep the customers, not their rows.
        customers = Customer.objects.filter(pk__in=customers.order_by().values("pk"))
    sql, sql_params, tag_dim = pivot_sql(customers, rows, cols, measure)
    with transaction.atomic(), connection.cursor() as cursor:
        # Only this transaction's queries: parallel workers for the scan, and no JIT, whose
        # compilation costs more than it saves on a query of a few hundred milliseconds.
        # work_mem stays small on purpose: joining the metrics in batches that fit the CPU's
        # caches measured faster than one hash table of every customer.
        cursor.execute(
            "SELECT set_config('max_parallel_workers_per_gather', %s, true), "
            "set_config('jit', 'off', true)",
            [str(settings.ANALYSIS_PARALLEL_WORKERS)],
        )
        cursor.execute(sql, sql_params)
        result = cursor.fetchall()
    pivot = _assemble(result, rows, cols, measure, tag_dim, params, filterset)
    pivot.seconds = time.monotonic() - started
    return form, filterset, pivot


def _assemble(result, rows, cols, measure, tag_dim, params, filterset):
    two = cols is not None
    cells, row_totals, col_totals, total = {}, {}, {}, None
    for record in result:
        if two:
            d1, d2, grouping, *sums = record
        else:
            d1, grouping, *sums = record
            d2 = None
            grouping = (grouping << 1) | 1  # as if a second dimension were rolled up
        # Bit 2 set: the row dimension is rolled up; bit 1: the column dimension.
        rolled = {"d1": bool(grouping & 2), "d2": bool(grouping & 1)}
        d1, d2 = _key(rows, d1), _key(cols, d2)
        n, o, r, n1, o1, r1 = sums
        if tag_dim and rolled[tag_dim]:
            n, o, r = n1, o1, r1
        if n is None:  # the grand total of no cells at all
            continue
        cell = Cell(int(n), int(o or 0), Decimal(r or 0), None)
        cell.value = measure.value(cell.customers, cell.orders, cell.revenue)
        if not rolled["d1"] and not rolled["d2"]:
            cells[(d1, d2)] = cell
        elif not rolled["d1"]:
            row_totals[d1] = cell
        elif two and not rolled["d2"]:
            col_totals[d2] = cell
        else:
            total = cell
    if total is None:  # no customers at all
        total = Cell(0, 0, Decimal(0), measure.value(0, 0, Decimal(0)))
    row_keys = _ordered(rows, row_totals)
    col_keys = _ordered(cols, col_totals) if two else [None]
    hidden_rows = max(0, len(row_keys) - settings.ANALYSIS_MAX_GROUPS)
    hidden_cols = max(0, len(col_keys) - MAX_COLUMNS)
    row_keys = row_keys[: settings.ANALYSIS_MAX_GROUPS]
    col_keys = col_keys[:MAX_COLUMNS]
    if not two:
        col_totals = {None: total}
        cells = {(k, None): row_totals[k] for k in row_keys}
    pivot = Pivot(
        rows_dimension=rows,
        cols_dimension=cols,
        measure=measure,
        row_keys=row_keys,
        col_keys=col_keys,
        row_labels=_labels(rows, row_keys),
        col_labels=_labels(cols, col_keys) if two else [str(measure.label)],
        cells=cells,
        row_totals=row_totals,
        col_totals=col_totals,
        total=total,
        hidden_rows=hidden_rows,
        hidden_cols=hidden_cols,
        filters=describe_filters(filterset),
    )
    _add_links(pivot, params)
    return pivot


def _key(dim, value):
    """A dimension value as the pivot keeps it: periods as the date they start on."""
    if dim is not None and dim.kind == "period" and isinstance(value, datetime.datetime):
        return value.date()
    return value


def _ordered(dim, totals):
    """Values in display order: choices and periods in their own order, others largest first;
    "no value" last."""
    keys = [k for k in totals if k is not None]
    if dim.kind == "choice" and not dim.largest_first:
        order = {value: i for i, (value, _label) in enumerate(dim.choices())}
        keys.sort(key=lambda k: (order.get(k, len(order)), str(k)))
    elif dim.kind == "period":
        keys.sort()
    else:
        keys.sort(key=lambda k: (-totals[k].customers, str(k)))
    if None in totals:
        keys.append(None)
    return keys


def _labels(dim, keys):
    if dim.kind == "choice":
        names = {value: str(label) for value, label in dim.choices()}
    elif dim.kind == "user":
        users = get_user_model().objects.filter(pk__in=[k for k in keys if k is not None])
        names = {u.pk: u.get_full_name() or u.get_username() for u in users}
    elif dim.kind == "team":
        names = dict(
            Team.objects.filter(pk__in=[k for k in keys if k is not None]).values_list("pk", "name")
        )
    elif dim.kind == "period":
        names = {k: format_period(k, dim.period) for k in keys if k is not None}
    else:
        names = {k: str(k) for k in keys if k is not None}
    none = _("No tag") if dim.kind == "tag" else _("Not set")
    return [names.get(k, str(k)) if k is not None else none for k in keys]


def format_period(value, period):
    if period == "year":
        return f"{value.year}"
    if period == "quarter":
        return f"{value.year} Q{(value.month - 1) // 3 + 1}"
    return f"{value.year}-{value.month:02d}"


def _period_bounds(start, period):
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    month = start.month - 1 + months
    end = datetime.date(start.year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)
    return start, end


def cell_params(dim, key, base):
    """The customer list parameters selecting the customers of one value of `dim`, added to
    the filters `base` (a dict of lists); None when the list cannot select them."""
    params = {k: list(v) for k, v in base.items()}
    if key is None:
        if not dim.none_param:
            return None
        name, value = dim.none_param
        params[name] = [value]
        return params
    if dim.kind == "period":
        start, end = _period_bounds(key, dim.period)
        after, before = f"{dim.param}_after", f"{dim.param}_before"
        if params.get(after):
            start = max(start, _date(params[after][0], start))
        if params.get(before):
            end = min(end, _date(params[before][0], end))
        params[after], params[before] = [start.isoformat()], [end.isoformat()]
        return params
    if dim.kind == "tag":
        tags = [t for t in ",".join(params.get("tags", [])).split(",") if t.strip()]
        params["tags"] = [",".join(dict.fromkeys([*tags, key]))]
        return params
    params[dim.param] = [str(key)]
    return params


def _date(text, default):
    try:
        return datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        return default


def _add_links(pivot, params):
    base = {}
    source = params if params is not None else {}
    for name in source:
        if name in PIVOT_PARAMS:
            continue
        values = source.getlist(name) if hasattr(source, "getlist") else source[name]
        values = [values] if isinstance(values, str) else list(values)
        values = [v for v in values if v not in ("", None)]
        if values:
            base[name] = values
    list_url = reverse("customers:list")

    def link(*pairs):
        chosen = base
        for dim, key in pairs:
            if dim is None:
                continue
            chosen = cell_params(dim, key, chosen)
            if chosen is None:
                return ""
        return f"{list_url}?{urlencode(chosen, doseq=True)}" if chosen else list_url

    rows, cols = pivot.rows_dimension, pivot.cols_dimension
    for (r, c), cell in pivot.cells.items():
        cell.link = link((rows, r), (cols, c))
    for r, cell in pivot.row_totals.items():
        cell.link = link((rows, r))
    if cols is not None:
        for c, cell in pivot.col_totals.items():
            cell.link = link((cols, c))
    pivot.total.link = link()


def describe_filters(filterset):
    """The list filters chosen, as (label, value) pairs for exports and the audit trail."""
    described = []
    form = filterset.form
    if not form.is_bound:
        return described
    for name, field in form.fields.items():
        value = form.data.getlist(name) if hasattr(form.data, "getlist") else form.data.get(name)
        values = [v for v in (value if isinstance(value, list) else [value]) if v not in ("", None)]
        if values:
            described.append((str(field.label or name), ", ".join(str(v) for v in values)))
    # Date ranges come as <name>_after and <name>_before.
    ends = {"_after": _("from"), "_before": _("until")}
    for name in sorted(set(form.data) - set(form.fields) - set(PIVOT_PARAMS)):
        value = form.data.get(name)
        base, _sep, end = name.rpartition("_")
        if value and f"_{end}" in ends and base in form.fields:
            label = form.fields[base].label or base
            described.append((f"{label} ({ends[f'_{end}']})", str(value)))
    return described


# --- Tables and charts --------------------------------------------------------------------


def pivot_chart(pivot):
    from reports.exports import Chart

    kind = "line" if pivot.rows_dimension.kind == "period" else "bar"
    keys = pivot.row_keys[:CHART_CATEGORIES]
    labels = pivot.row_labels[:CHART_CATEGORIES]

    def number(cell):
        return float(cell.value) if cell is not None and cell.value is not None else 0.0

    if pivot.cols_dimension is None:
        series = [(str(pivot.measure.label), [number(pivot.row_totals[k]) for k in keys])]
    else:
        series = [
            (label, [number(pivot.cells.get((k, col))) for k in keys])
            for col, label in list(zip(pivot.col_keys, pivot.col_labels, strict=True))[
                :CHART_SERIES
            ]
        ]
    return Chart(kind=kind, categories=labels, series=series, title=pivot_title(pivot))


def browser_chart(pivot):
    """The pivot's chart in the form static/js/charts.js draws, each bar linking to its
    customers. Two dimensions of a summable measure stack the columns' values in each row's
    bar; a ratio cannot be stacked, so its chart shows the row totals."""
    keys = pivot.row_keys[:CHART_CATEGORIES]
    labels = pivot.row_labels[:CHART_CATEGORIES]
    chart = {"id": "pivot-chart", "labels": labels}

    def number(cell):
        return float(cell.value) if cell is not None and cell.value is not None else 0

    if pivot.cols_dimension is not None and pivot.measure.key in ("customers", "orders", "revenue"):
        columns = list(zip(pivot.col_keys, pivot.col_labels, strict=True))[:CHART_SERIES]
        chart["kind"] = "stacked"
        chart["series"] = [
            {
                "name": label,
                "data": [number(pivot.cells.get((k, col))) for k in keys],
                "links": [getattr(pivot.cells.get((k, col)), "link", "") for k in keys],
            }
            for col, label in columns
        ]
        return chart
    chart["kind"] = "columns"
    chart["counts"] = [number(pivot.row_totals[k]) for k in keys]
    chart["links"] = [pivot.row_totals[k].link for k in keys]
    return chart


def pivot_title(pivot):
    parts = [str(pivot.measure.label), str(pivot.rows_dimension.label)]
    if pivot.cols_dimension is not None:
        parts.append(str(pivot.cols_dimension.label))
    return _("%(measure)s by %(dimensions)s") % {
        "measure": parts[0],
        "dimensions": " × ".join(parts[1:]),
    }


def pivot_table(pivot, *, title=""):
    """The pivot as a reports.exports.Table: one row per row value, totals last."""
    from reports.exports import Column, Table

    kind = pivot.measure.kind
    two = pivot.cols_dimension is not None
    columns = [Column(str(pivot.rows_dimension.label))]
    if two:
        columns += [Column(label, kind) for label in pivot.col_labels]
    columns.append(Column(_("Total") if two else str(pivot.measure.label), kind))
    rows = []
    for label, row_total, cells in pivot.table_rows():
        values = [c.value if c is not None else None for c in cells] if two else []
        rows.append([label, *values, row_total.value])
    totals = [_("Total")]
    if two:
        totals += [c.value for c in pivot.column_totals()]
    totals.append(pivot.total.value)
    filters = [
        (_("Measure"), str(pivot.measure.label)),
        (pgettext("pivot dimension", "Rows"), str(pivot.rows_dimension.label)),
    ]
    if two:
        filters.append((_("Columns"), str(pivot.cols_dimension.label)))
    return Table(
        title=title or pivot_title(pivot),
        columns=columns,
        rows=rows,
        filters=filters + list(pivot.filters or []),
        chart=pivot_chart(pivot),
        totals=totals,
        aggregated=True,
        row_count=len(rows),
    )


class InvalidPivot(ValueError):
    """A stored pivot whose parameters are no longer valid."""


def table_from_params(params, user, *, title=""):
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for name, value in (params or {}).items():
        query.setlist(name, value if isinstance(value, list) else [value])
    form, _filterset, pivot = run_pivot(query, user)
    if pivot is None:
        raise InvalidPivot("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return pivot_table(pivot, title=title)


def table_from_spec(spec, user):
    """The Table of a generated file: spec {"kind": "analysis", "params": {...}} (the pivot
    page's GET parameters), over what `user` may see."""
    return table_from_params(spec.get("params", {}), user)


def params_to_json(query):
    """The GET parameters of a pivot as JSON: {name: [values]} (for saved reports and files)."""
    return {
        name: query.getlist(name) for name in query if name != "format" and any(query.getlist(name))
    }


# --- Speed --------------------------------------------------------------------------------


def measure_pivots(*, usernames=("manager",), repeat=3):
    """Seconds the pivots of the speed goals take on this database, best of `repeat` runs:
    two dimensions over every customer (as an administrator sees them), with the customers
    measure and with order measures (orders, revenue, average order value from the metrics),
    and the same pivots as each of `usernames` (whose customers are fewer) when they exist.
    Reads only. For `make bench`."""
    from django.http import QueryDict

    cases = {
        "province × channel, customers": "rows=province&cols=source&measure=customers",
        "sign-up month × status, customers": "rows=created_month&cols=status&measure=customers",
        "tag × channel, customers": "rows=tag&cols=source&measure=customers",
        "province × channel, revenue": "rows=province&cols=source&measure=revenue",
        "segment × age band, orders": "rows=segment&cols=age_band&measure=orders",
        "first purchase quarter × province, average order value": (
            "rows=first_purchase_quarter&cols=province&measure=average_order_value"
        ),
    }
    # Every customer, without a user row: an active superuser sees them all.
    everyone = get_user_model()(username="bench", is_active=True, is_superuser=True)
    users = {"all customers": everyone}
    for name in usernames:
        user = get_user_model().objects.filter(username=name, is_active=True).first()
        if user is not None:
            users[f"as {name}"] = user
    figures = {"customers": Customer.objects.count()}
    for scope, user in users.items():
        for name, query in cases.items():
            seconds = []
            for _run in range(repeat):
                _form, _filters, pivot = run_pivot(QueryDict(query), user)
                seconds.append(pivot.seconds)
            figures[f"{scope}: {name}"] = round(min(seconds), 3)
    return figures
