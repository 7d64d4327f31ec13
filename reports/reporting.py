"""The report builder's engine: a report definition (JSON) checked against a whitelist of fields
and operators, turned into one ORM query over what the running user may see.

A definition is a dict:

    {"source": "customers" | "orders" | "interactions",
     "columns": ["province", "city", ...],            # plain rows (when nothing is grouped)
     "filters": [{"field": "status", "op": "in", "value": "active, lead"},
                 {"field": "consents", "op": "granted", "value": "marketing_email"}, ...],
     "group_by": ["province"],                         # up to two fields; then rows are groups
     "aggregates": [{"func": "count"}, {"func": "sum", "field": "amount"}],
     "sort": {"key": "sum_amount", "desc": true} | null,
     "limit": 1000 | null,
     "chart": "" | "bar" | "line" | "pie"}

Every name in it is looked up in SOURCES and every value parsed for the field's type, so a
definition can never inject SQL; `validate_definition` raises ValidationError for anything
else. The sensitive encrypted customer fields (phone, email, birthday, street) are not offered.
Orders and interactions are those of the customers the user may see.
"""

import datetime
import decimal
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    Avg,
    Count,
    DateField,
    DateTimeField,
    DecimalField,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    Sum,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Round, Trunc
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from customers.models import (
    ArchivedCustomer,
    ArchivedInteraction,
    ArchivedOrder,
    Channel,
    ConsentPurpose,
    Customer,
    Gender,
    Interaction,
    InteractionKind,
    Order,
    Status,
)
from customers.models import Source as CustomerSource

SOURCE_NAMES = ("customers", "orders", "interactions")
MAX_COLUMNS = 20
MAX_FILTERS = 10
MAX_GROUPS = 2
MAX_AGGREGATES = 4
MAX_VALUE_LENGTH = 200
CHART_KINDS = ("bar", "line", "pie")
CHART_CATEGORIES = 30

# Field kinds, and what each may do. CONSENTS is the customer's consented_purposes: the
# purposes granted now, kept by database triggers and GIN-indexed.
TEXT, CHOICE, INTEGER, MONEY, DECIMAL, DATE, DATETIME, PERIOD, TAGS, CONSENTS = (
    "text",
    "choice",
    "integer",
    "money",
    "decimal",
    "date",
    "datetime",
    "period",
    "tags",
    "consents",
)
NUMERIC = (INTEGER, MONEY, DECIMAL)
EXPORT_KIND = {
    TEXT: "text",
    CHOICE: "text",
    TAGS: "text",
    CONSENTS: "text",
    PERIOD: "text",
    INTEGER: "integer",
    MONEY: "money",
    DECIMAL: "decimal",
    DATE: "date",
    DATETIME: "datetime",
}

OPERATORS = {
    "eq": gettext_lazy("is"),
    "ne": gettext_lazy("is not"),
    "in": gettext_lazy("is one of"),
    "not_in": gettext_lazy("is none of"),
    "contains": gettext_lazy("contains"),
    "startswith": gettext_lazy("starts with"),
    "gt": gettext_lazy("greater than"),
    "gte": gettext_lazy("at least"),
    "lt": gettext_lazy("less than"),
    "lte": gettext_lazy("at most"),
    "on": gettext_lazy("on"),
    "after": gettext_lazy("on or after"),
    "before": gettext_lazy("before"),
    "last_days": gettext_lazy("in the last N days"),
    "has": gettext_lazy("has the tag"),
    "has_not": gettext_lazy("has not the tag"),
    "granted": gettext_lazy("is granted"),
    "not_granted": gettext_lazy("is not granted"),
    "empty": gettext_lazy("is empty"),
    "not_empty": gettext_lazy("is not empty"),
}
KIND_OPERATORS = {
    TEXT: ("eq", "ne", "in", "contains", "startswith", "empty", "not_empty"),
    CHOICE: ("eq", "ne", "in", "not_in"),
    INTEGER: ("eq", "ne", "gt", "gte", "lt", "lte", "empty", "not_empty"),
    MONEY: ("eq", "ne", "gt", "gte", "lt", "lte", "empty", "not_empty"),
    DECIMAL: ("eq", "ne", "gt", "gte", "lt", "lte", "empty", "not_empty"),
    DATE: ("on", "after", "before", "last_days", "empty", "not_empty"),
    DATETIME: ("on", "after", "before", "last_days", "empty", "not_empty"),
    PERIOD: (),
    TAGS: ("has", "has_not", "empty", "not_empty"),
    CONSENTS: ("granted", "not_granted"),
}
VALUELESS = ("empty", "not_empty")

AGGREGATES = {
    "count": gettext_lazy("Count"),
    "sum": gettext_lazy("Sum"),
    "avg": gettext_lazy("Average"),
    "min": gettext_lazy("Minimum"),
    "max": gettext_lazy("Maximum"),
}
AGGREGATE_FUNCTIONS = {"sum": Sum, "avg": Avg, "min": Min, "max": Max}


@dataclass(frozen=True)
class Field:
    key: str
    label: object  # a lazy translation
    kind: str
    path: str = ""  # ORM path from the source model, unless `expression` is given
    expression: object = None  # callable -> a Django expression
    choices: object = None  # callable -> [(value, label)], for CHOICE and CONSENTS
    period: str = ""  # "month" | "quarter" | "year" for PERIOD fields
    column: bool = True
    group: bool = True
    display: dict = field(default_factory=dict, compare=False)
    # callable -> the expression on archived customers, where it differs (their analytics
    # figures are kept in a JSON snapshot)
    archived: object = None

    def expr(self):
        if self.expression is not None:
            return self.expression()
        return F(self.path)

    def archive_expr(self, part):
        """The expression on the rows of an ArchivePart."""
        if part.archived_customers and self.archived is not None:
            return self.archived()
        if self.expression is not None:
            return self.expression()
        path = self.path
        for old, new in part.renames:
            if path.startswith(old):
                path = new + path.removeprefix(old)
                break
        return F(path)

    def choice_list(self):
        return list(self.choices()) if self.choices else []

    @property
    def operators(self):
        return KIND_OPERATORS[self.kind]

    @property
    def summable(self):
        return self.kind in NUMERIC

    @property
    def orderable(self):
        return self.kind in (*NUMERIC, DATE, DATETIME)


def _zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _periods(prefix, path, label):
    """Month, quarter and year of a time field (in TIME_ZONE), for grouping."""
    labels = {
        "month": gettext_lazy("%(field)s: month"),
        "quarter": gettext_lazy("%(field)s: quarter"),
        "year": gettext_lazy("%(field)s: year"),
    }
    return [
        Field(
            f"{prefix}_{period}",
            _Formatted(labels[period], label),
            PERIOD,
            expression=lambda period=period: Trunc(
                path, period, output_field=DateField(), tzinfo=_zone()
            ),
            period=period,
        )
        for period in ("month", "quarter", "year")
    ]


class _Formatted:
    """A lazily translated label with the field's label put in."""

    def __init__(self, template, field_label):
        self.template, self.field_label = template, field_label

    def __str__(self):
        return str(self.template) % {"field": self.field_label}


def _customer_fields(prefix=""):
    """The customer's reportable fields; `prefix` is the ORM path to the customer."""
    p = prefix
    key = (lambda k: f"customer_{k}") if prefix else (lambda k: k)
    fields = [
        Field(
            key("name"),
            gettext_lazy("Customer") if p else gettext_lazy("Name"),
            TEXT,
            f"{p}display_name",
            group=bool(p),
        ),
        Field(key("company"), gettext_lazy("Company"), TEXT, f"{p}company"),
        Field(key("job_title"), gettext_lazy("Job title"), TEXT, f"{p}job_title"),
        Field(key("country"), gettext_lazy("Country or region"), TEXT, f"{p}country"),
        Field(key("province"), gettext_lazy("Province"), TEXT, f"{p}province"),
        Field(key("city"), gettext_lazy("City"), TEXT, f"{p}city"),
        Field(key("district"), gettext_lazy("District"), TEXT, f"{p}district"),
        Field(
            key("source"),
            gettext_lazy("Source channel"),
            CHOICE,
            f"{p}source",
            choices=lambda: CustomerSource.choices,
        ),
        Field(
            key("status"),
            gettext_lazy("Status"),
            CHOICE,
            f"{p}status",
            choices=lambda: Status.choices,
        ),
        Field(
            key("gender"),
            gettext_lazy("Gender"),
            CHOICE,
            f"{p}gender",
            choices=lambda: Gender.choices,
        ),
        Field(key("owner"), gettext_lazy("Owner"), TEXT, f"{p}owner__username"),
        Field(key("team"), gettext_lazy("Team"), TEXT, f"{p}team__name"),
        # A list of purposes: filtered and shown, but not a group.
        Field(
            key("consents"),
            gettext_lazy("Consents to"),
            CONSENTS,
            f"{p}consented_purposes",
            choices=lambda: ConsentPurpose.choices,
            group=False,
        ),
    ]
    if not p:
        fields += [
            Field("tags", gettext_lazy("Tags"), TAGS, "tags", group=False),
            Field("created_at", gettext_lazy("Created at"), DATETIME, "created_at"),
            *_periods("created", "created_at", gettext_lazy("Created")),
            *_metrics_fields(),
        ]
    return fields


def _metrics_fields():
    """Purchase figures kept per customer by reports.metrics (no row means no orders)."""
    from reports.metrics import AGE_BANDS, age_band_expression
    from reports.models import Segment

    return [
        Field(
            "age_band",
            gettext_lazy("Age band"),
            CHOICE,
            expression=age_band_expression,
            choices=lambda: (
                [(k, label) for k, label, *_rest in AGE_BANDS] + [("unknown", _("Unknown"))]
            ),
        ),
        Field(
            "orders",
            gettext_lazy("Orders"),
            INTEGER,
            expression=lambda: Coalesce("metrics__orders", 0),
            archived=lambda: Coalesce(_kept_metric("orders", IntegerField()), 0),
        ),
        Field(
            "revenue",
            gettext_lazy("Total spent"),
            MONEY,
            expression=lambda: Coalesce("metrics__revenue", Value(decimal.Decimal(0))),
            archived=lambda: Coalesce(_kept_metric("revenue", _MONEY), Value(decimal.Decimal(0))),
        ),
        Field(
            "first_order_at",
            gettext_lazy("First purchase"),
            DATETIME,
            "metrics__first_order_at",
            archived=lambda: _kept_metric("first_order_at", DateTimeField()),
        ),
        Field(
            "last_order_at",
            gettext_lazy("Last purchase"),
            DATETIME,
            "metrics__last_order_at",
            archived=lambda: _kept_metric("last_order_at", DateTimeField()),
        ),
        Field(
            "segment",
            gettext_lazy("RFM segment"),
            CHOICE,
            "metrics__segment",
            choices=lambda: Segment.choices,
            archived=lambda: KT("related__metrics__segment"),
        ),
        Field(
            "predicted_ltv",
            gettext_lazy("Predicted lifetime value"),
            MONEY,
            "metrics__predicted_ltv",
            archived=lambda: _kept_metric("predicted_ltv", _MONEY),
        ),
    ]


_MONEY = DecimalField(max_digits=16, decimal_places=2)


def _kept_metric(name, output_field):
    """An analytics figure of an archived customer, from the snapshot taken when archived."""
    return Cast(KT(f"related__metrics__{name}"), output_field=output_field)


def _order_fields():
    return [
        Field("order_number", gettext_lazy("Order number"), TEXT, "external_id", group=False),
        Field("source_system", gettext_lazy("Source system"), TEXT, "source_system"),
        Field("ordered_at", gettext_lazy("Order time"), DATETIME, "ordered_at"),
        *_periods("ordered", "ordered_at", gettext_lazy("Ordered")),
        Field("amount", gettext_lazy("Amount"), MONEY, "amount", group=False),
        Field("currency", gettext_lazy("Currency"), TEXT, "currency"),
        Field(
            "channel", gettext_lazy("Channel"), CHOICE, "channel", choices=lambda: Channel.choices
        ),
        *_customer_fields("customer__"),
    ]


def _interaction_fields():
    return [
        Field(
            "kind", gettext_lazy("Kind"), CHOICE, "kind", choices=lambda: InteractionKind.choices
        ),
        Field(
            "channel", gettext_lazy("Channel"), CHOICE, "channel", choices=lambda: Channel.choices
        ),
        Field("occurred_at", gettext_lazy("Time"), DATETIME, "occurred_at"),
        *_periods("occurred", "occurred_at", gettext_lazy("Occurred")),
        Field("summary", gettext_lazy("Summary"), TEXT, "summary", group=False),
        Field("recorded_by", gettext_lazy("Recorded by"), TEXT, "created_by__username"),
        *_customer_fields("customer__"),
    ]


@dataclass(frozen=True)
class Source:
    key: str
    label: object
    fields: object  # callable -> list of Field
    base: object  # callable(user) -> the queryset the user may see
    # callable(user) -> the ArchiveParts of the archived rows the user may see
    archive: object = None

    def field_map(self):
        return {f.key: f for f in self.fields()}


@dataclass(frozen=True)
class ArchivePart:
    """Archived rows of a source, reported together with the live ones ("include archive").

    `renames` turns a live field's ORM path into this part's ((old prefix, new prefix), ...);
    `archived_customers` says the customers are ArchivedCustomer rows, whose analytics figures
    come from their snapshot (Field.archived).
    """

    queryset: object
    renames: tuple = ()
    archived_customers: bool = False


def _visible(user):
    return Customer.objects.visible_to(user)


def _of_visible_customers(model, user):
    visible = _visible(user)
    if visible.query.is_empty():
        return model.objects.none()
    if not visible.query.has_filters():  # every customer: no need to join them
        return model.objects.all()
    return model.objects.filter(customer__in=visible.values("pk"))


def _archived_customers(user):
    return [ArchivePart(ArchivedCustomer.objects.visible_to(user), archived_customers=True)]


def _archived_history(model, user, renames=()):
    """The archived rows of `model` of the customers `user` may see: those of live customers
    (old months archived for their age) and those of archived customers, as two parts."""
    live = _visible(user)
    archived = ArchivedCustomer.objects.visible_to(user)
    return [
        ArchivePart(
            model.objects.filter(customer_id__in=live.values("pk")),
            renames=(("customer__", "live_customer__"), *renames),
        ),
        ArchivePart(
            model.objects.filter(customer_id__in=archived.values("pk")),
            renames=(("customer__", "archived_customer__"), *renames),
        ),
    ]


SOURCES = {
    "customers": Source(
        "customers",
        gettext_lazy("Customers"),
        _customer_fields,
        _visible,
        archive=_archived_customers,
    ),
    "orders": Source(
        "orders",
        gettext_lazy("Orders"),
        _order_fields,
        lambda u: _of_visible_customers(Order, u),
        archive=lambda u: _archived_history(ArchivedOrder, u),
    ),
    "interactions": Source(
        "interactions",
        gettext_lazy("Interactions"),
        _interaction_fields,
        lambda u: _of_visible_customers(Interaction, u),
        archive=lambda u: _archived_history(
            ArchivedInteraction, u, renames=(("created_by__", "recorded_by__"),)
        ),
    ),
}


# --- Validation ---------------------------------------------------------------------------


def parse_filter(source_fields, field_key, op, value):
    """The typed value of one filter, or ValidationError with a message for the user."""
    field_def = source_fields.get(field_key)
    if field_def is None:
        raise ValidationError(_("Unknown field %(field)s.") % {"field": field_key})
    if op not in field_def.operators:
        raise ValidationError(
            _("%(field)s cannot be filtered with “%(op)s”.")
            % {"field": field_def.label, "op": OPERATORS.get(op, op)}
        )
    if op in VALUELESS:
        return None
    value = "" if value is None else str(value).strip()
    if len(value) > MAX_VALUE_LENGTH:
        raise ValidationError(_("The value is too long."))
    if op in ("in", "not_in"):
        values = [v.strip() for v in value.replace("，", ",").split(",") if v.strip()]
        if not values:
            raise ValidationError(
                _("Give at least one value for %(field)s.") % {"field": field_def.label}
            )
        return [_parse_value(field_def, v) for v in values]
    if op == "last_days":
        try:
            days = int(value)
        except ValueError:
            raise ValidationError(_("Give a whole number of days.")) from None
        if not 0 < days <= 36600:
            raise ValidationError(_("Give a number of days between 1 and 36600."))
        return days
    if value == "" and not (field_def.kind == CHOICE and "" in dict(field_def.choice_list())):
        raise ValidationError(_("Give a value for %(field)s.") % {"field": field_def.label})
    return _parse_value(field_def, value)


def _parse_value(field_def, value):
    kind = field_def.kind
    if kind in (CHOICE, CONSENTS):
        choices = dict(field_def.choice_list())
        if value not in choices:
            # Users may type the label they see as well as the stored value.
            by_label = {str(label): key for key, label in choices.items()}
            if value not in by_label:
                raise ValidationError(
                    _("%(value)s is not a choice of %(field)s.")
                    % {"value": value, "field": field_def.label}
                )
            value = by_label[value]
        return value
    if kind in NUMERIC:
        try:
            number = decimal.Decimal(value)
        except decimal.InvalidOperation:
            raise ValidationError(_("%(value)s is not a number.") % {"value": value}) from None
        if not number.is_finite() or abs(number) >= 10**14:
            raise ValidationError(_("%(value)s is not a number.") % {"value": value})
        return str(int(number)) if kind == INTEGER and number == int(number) else str(number)
    if kind in (DATE, DATETIME):
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValidationError(
                _("%(value)s is not a date (YYYY-MM-DD).") % {"value": value}
            ) from None
    return value


def validate_definition(definition):
    """A clean copy of `definition`, or ValidationError listing what is wrong."""
    if not isinstance(definition, dict):
        raise ValidationError(_("The report definition is not valid."))
    errors = []
    source = SOURCES.get(definition.get("source"))
    if source is None:
        raise ValidationError(_("Choose what to report on: customers, orders or interactions."))
    fields = source.field_map()

    def names(key, limit):
        value = definition.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(_("The report definition is not valid."))
            return []
        if len(value) > limit:
            errors.append(_("Choose at most %(n)s.") % {"n": limit})
        return list(dict.fromkeys(value))[:limit]

    group_by = names("group_by", MAX_GROUPS)
    for key in group_by:
        if key not in fields or not fields[key].group:
            errors.append(_("%(field)s cannot be grouped by.") % {"field": key})
    columns = names("columns", MAX_COLUMNS)
    for key in columns:
        if key not in fields or not fields[key].column or fields[key].kind == PERIOD:
            errors.append(_("%(field)s is not a column of this source.") % {"field": key})

    aggregates = []
    raw_aggregates = definition.get("aggregates") or []
    if not isinstance(raw_aggregates, list) or len(raw_aggregates) > MAX_AGGREGATES:
        errors.append(_("Choose at most %(n)s figures.") % {"n": MAX_AGGREGATES})
        raw_aggregates = []
    for item in raw_aggregates:
        func = item.get("func") if isinstance(item, dict) else None
        key = (item.get("field") or "") if isinstance(item, dict) else ""
        if func not in AGGREGATES:
            errors.append(_("Unknown figure %(func)s.") % {"func": func})
        elif func == "count":
            aggregates.append({"func": "count"})
        elif key not in fields:
            errors.append(
                _("Choose the field to compute the %(func)s of.") % {"func": AGGREGATES[func]}
            )
        elif (func in ("sum", "avg") and not fields[key].summable) or not fields[key].orderable:
            errors.append(
                _("%(func)s cannot be computed of %(field)s.")
                % {"func": AGGREGATES[func], "field": fields[key].label}
            )
        else:
            aggregates.append({"func": func, "field": key})
    aggregates = list({aggregate_key(a): a for a in aggregates}.values())

    if group_by and not aggregates:
        aggregates = [{"func": "count"}]
    if aggregates and not group_by:
        errors.append(_("Choose what to group by to compute figures."))
    if not group_by and not columns:
        errors.append(_("Choose at least one column."))

    filters = []
    raw_filters = definition.get("filters") or []
    if not isinstance(raw_filters, list) or len(raw_filters) > MAX_FILTERS:
        errors.append(_("Give at most %(n)s filters.") % {"n": MAX_FILTERS})
        raw_filters = []
    for item in raw_filters:
        if not isinstance(item, dict):
            errors.append(_("The report definition is not valid."))
            continue
        try:
            parse_filter(fields, item.get("field"), item.get("op"), item.get("value"))
        except ValidationError as error:
            errors.extend(error.messages)
            continue
        value = item.get("value")
        filters.append(
            {
                "field": item["field"],
                "op": item["op"],
                "value": "" if item["op"] in VALUELESS or value is None else str(value).strip(),
            }
        )

    outputs = output_keys({"group_by": group_by, "columns": columns, "aggregates": aggregates})
    sort = definition.get("sort") or None
    if sort is not None:
        if not isinstance(sort, dict) or sort.get("key") not in outputs:
            errors.append(_("Sort by one of the report's columns."))
            sort = None
        else:
            sort = {"key": sort["key"], "desc": bool(sort.get("desc"))}

    limit = definition.get("limit")
    if limit in ("", None):
        limit = None
    else:
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            limit = 0
        if not 1 <= limit <= settings.REPORT_MAX_ROWS:
            errors.append(
                _("The row limit must be between 1 and %(n)s.") % {"n": settings.REPORT_MAX_ROWS}
            )

    chart = definition.get("chart") or ""
    if chart not in ("", *CHART_KINDS):
        errors.append(_("Unknown chart kind."))
    elif chart and not group_by:
        errors.append(_("A chart needs a grouped report."))

    if errors:
        raise ValidationError(list(dict.fromkeys(str(e) for e in errors)))
    return {
        "source": source.key,
        "columns": [] if group_by else columns,
        "filters": filters,
        "group_by": group_by,
        "aggregates": aggregates,
        "sort": sort,
        "limit": limit,
        "chart": chart,
        "archive": bool(definition.get("archive")),
    }


def aggregate_key(aggregate):
    if aggregate["func"] == "count":
        return "count"
    return f"{aggregate['func']}_{aggregate['field']}"


def output_keys(definition):
    if definition.get("group_by"):
        return [*definition["group_by"], *(aggregate_key(a) for a in definition["aggregates"])]
    return list(definition.get("columns") or [])


# --- Running ------------------------------------------------------------------------------


def _filter_q(field_def, op, value, expr=None):
    expr = field_def.expr() if expr is None else expr
    alias = f"f_{field_def.key}"
    if op == "empty":
        if field_def.kind == TAGS:
            return alias, expr, Q(**{alias: []})
        if field_def.kind == TEXT:
            return alias, expr, Q(**{f"{alias}__isnull": True}) | Q(**{alias: ""})
        return alias, expr, Q(**{f"{alias}__isnull": True})
    if op == "not_empty":
        q = _filter_q(field_def, "empty", None, expr)[2]
        return alias, expr, ~q
    # @> on the array (tags, consented purposes), which their GIN indexes serve.
    if op in ("has", "granted"):
        return alias, expr, Q(**{f"{alias}__contains": [value]})
    if op in ("has_not", "not_granted"):
        return alias, expr, ~Q(**{f"{alias}__contains": [value]})
    if field_def.kind in (DATE, DATETIME):
        zone = _zone()
        if op == "last_days":
            since = timezone.localdate() - datetime.timedelta(days=value - 1)
            start = datetime.datetime.combine(since, datetime.time(), tzinfo=zone)
            return alias, expr, Q(**{f"{alias}__gte": start})
        day = datetime.date.fromisoformat(value)
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=zone)
        end = start + datetime.timedelta(days=1)
        if field_def.kind == DATE:
            start, end = day, day + datetime.timedelta(days=1)
        if op == "on":
            return alias, expr, Q(**{f"{alias}__gte": start, f"{alias}__lt": end})
        if op == "after":
            return alias, expr, Q(**{f"{alias}__gte": start})
        return alias, expr, Q(**{f"{alias}__lt": start})
    lookup = {
        "eq": "exact",
        "ne": "exact",
        "in": "in",
        "not_in": "in",
        "contains": "icontains",
        "startswith": "istartswith",
        "gt": "gt",
        "gte": "gte",
        "lt": "lt",
        "lte": "lte",
    }[op]
    if field_def.kind in NUMERIC:
        value = (
            [decimal.Decimal(v) for v in value]
            if isinstance(value, list)
            else decimal.Decimal(value)
        )
    q = Q(**{f"{alias}__{lookup}": value})
    return alias, expr, ~q if op in ("ne", "not_in") else q


def report_queryset(definition, user):
    """The rows of a validated definition over what `user` may see, as value dicts."""
    source = SOURCES[definition["source"]]
    fields = source.field_map()
    queryset = source.base(user)
    for item in definition["filters"]:
        field_def = fields[item["field"]]
        value = parse_filter(fields, item["field"], item["op"], item["value"])
        alias, expr, condition = _filter_q(field_def, item["op"], value)
        queryset = queryset.alias(**{alias: expr}).filter(condition)
    keys = output_keys(definition)
    if definition["group_by"]:
        groups = {f"r_{k}": fields[k].expr() for k in definition["group_by"]}
        figures = {}
        for aggregate in definition["aggregates"]:
            if aggregate["func"] == "count":
                figures["r_count"] = Count("pk")
            else:
                function = AGGREGATE_FUNCTIONS[aggregate["func"]]
                figure = function(fields[aggregate["field"]].expr())
                if aggregate["func"] == "avg":  # to the cent, as money is
                    figure = Round(figure, 2, output_field=DecimalField())
                figures[f"r_{aggregate_key(aggregate)}"] = figure
        queryset = queryset.annotate(**groups).values(*groups).annotate(**figures)
        default_order = list(groups)
    else:
        queryset = queryset.annotate(**{f"r_{k}": fields[k].expr() for k in keys}).values(
            *(f"r_{k}" for k in keys)
        )
        default_order = ["-pk"]  # newest first: ids grow with time
    order = []
    if sort := definition["sort"]:
        expression = F(f"r_{sort['key']}")
        order.append(
            expression.desc(nulls_last=True) if sort["desc"] else expression.asc(nulls_last=True)
        )
    queryset = queryset.order_by(*order, *default_order)
    return queryset, keys


def columns_of(definition):
    """The (key, label, export kind) of each output column."""
    fields = SOURCES[definition["source"]].field_map()
    result = []
    for key in output_keys(definition):
        if key in fields:
            result.append((key, str(fields[key].label), EXPORT_KIND[fields[key].kind]))
            continue
        aggregate = next(a for a in definition["aggregates"] if aggregate_key(a) == key)
        if aggregate["func"] == "count":
            result.append((key, str(AGGREGATES["count"]), "integer"))
            continue
        field_def = fields[aggregate["field"]]
        kind = EXPORT_KIND[field_def.kind]
        if aggregate["func"] == "avg" and kind == "integer":
            kind = "decimal"
        label = f"{AGGREGATES[aggregate['func']]}: {field_def.label}"
        result.append((key, label, kind))
    return result


def _displayer(field_def):
    """A function turning a stored value into what the table shows."""
    if field_def is None:
        return lambda v: v
    if field_def.kind == CHOICE:
        labels = {k: str(v) for k, v in field_def.choice_list()}
        return lambda v: labels.get(v, v) if v is not None else None
    if field_def.kind == TAGS:
        return lambda v: ", ".join(v or [])
    if field_def.kind == CONSENTS:
        labels = {k: str(v) for k, v in field_def.choice_list()}
        return lambda v: ", ".join(label for key, label in labels.items() if key in (v or ()))
    if field_def.kind == PERIOD:
        return lambda v: format_period(v, field_def.period)
    if field_def.kind == DATETIME:
        return lambda v: timezone.localtime(v) if v is not None else None
    return lambda v: v


def format_period(value, period):
    if value is None:
        return ""
    if period == "year":
        return f"{value.year}"
    if period == "quarter":
        return f"{value.year} Q{(value.month - 1) // 3 + 1}"
    return f"{value.year}-{value.month:02d}"


def rows_of(definition, user, *, limit=None):
    """The report's rows over what `user` may see, as tuples of display values (a generator)."""
    fields = SOURCES[definition["source"]].field_map()
    cap = min(x for x in (limit, definition["limit"], settings.REPORT_MAX_ROWS) if x)
    if definition.get("archive"):
        rows, keys = archive_report_rows(definition, user, cap)
    else:
        queryset, keys = report_queryset(definition, user)
        rows = queryset[:cap].iterator(chunk_size=2000)
    show = [_displayer(fields.get(k)) for k in keys]
    for row in rows:
        yield tuple(fn(row[f"r_{k}"]) for fn, k in zip(show, keys, strict=True))


# --- Including the archive ----------------------------------------------------------------
# The live rows and each ArchivePart are filtered and their output expressions computed by the
# ORM, each as a plain SELECT of the same columns; PostgreSQL groups, sorts and limits their
# UNION ALL as one query, so figures over live and archived rows are computed together.


def _part_rows(queryset, fields, definition, expr_of):
    """`queryset` filtered by the definition, as values of the columns the union needs:
    r_<key> for each output column or group, v_<field> for each figure's field, and r_pk."""
    for item in definition["filters"]:
        field_def = fields[item["field"]]
        value = parse_filter(fields, item["field"], item["op"], item["value"])
        alias, expr, condition = _filter_q(field_def, item["op"], value, expr_of(field_def))
        queryset = queryset.alias(**{alias: expr}).filter(condition)
    if definition["group_by"]:
        columns = {f"r_{k}": expr_of(fields[k]) for k in definition["group_by"]}
        for aggregate in definition["aggregates"]:
            if aggregate["func"] != "count":
                columns[f"v_{aggregate['field']}"] = expr_of(fields[aggregate["field"]])
    else:
        columns = {f"r_{k}": expr_of(fields[k]) for k in output_keys(definition)}
        columns["r_pk"] = F("pk")
    return queryset.annotate(**columns).values(*columns).order_by()


def _union_parts(definition, user):
    """(SQL, params) of the UNION ALL of the live rows and the archived ones `user` may see."""
    source = SOURCES[definition["source"]]
    fields = source.field_map()
    parts = [_part_rows(source.base(user), fields, definition, lambda f: f.expr())]
    for part in source.archive(user):
        parts.append(
            _part_rows(part.queryset, fields, definition, lambda f, part=part: f.archive_expr(part))
        )
    sqls, params = [], []
    for queryset in parts:
        if queryset.query.is_empty():
            continue
        sql, part_params = queryset.query.get_compiler(connection=connection).as_sql()
        sqls.append(f"({sql})")
        params.extend(part_params)
    return sqls, params


SQL_AGGREGATES = {"sum": "sum", "avg": "avg", "min": "min", "max": "max"}


def archive_report_rows(definition, user, cap):
    """The rows of a definition with "archive" over live and archived records, as dicts keyed
    r_<output key>, and the output keys."""
    keys = output_keys(definition)
    sqls, params = _union_parts(definition, user)
    if not sqls:
        return [], keys
    q = connection.ops.quote_name
    union = " UNION ALL ".join(sqls)
    if definition["group_by"]:
        groups = [f"u.{q('r_' + k)}" for k in definition["group_by"]]
        select = [
            f"{g} AS {q('r_' + k)}" for g, k in zip(groups, definition["group_by"], strict=True)
        ]
        for aggregate in definition["aggregates"]:
            name = q("r_" + aggregate_key(aggregate))
            if aggregate["func"] == "count":
                select.append(f"count(*) AS {name}")
                continue
            figure = f"{SQL_AGGREGATES[aggregate['func']]}(u.{q('v_' + aggregate['field'])})"
            if aggregate["func"] == "avg":  # to the cent, as money is
                figure = f"round(({figure})::numeric, 2)"
            select.append(f"{figure} AS {name}")
        tail = f" GROUP BY {', '.join(str(i + 1) for i in range(len(groups)))}"
        default_order = [f"{q('r_' + k)} ASC" for k in definition["group_by"]]
        sql = f"SELECT {', '.join(select)} FROM ({union}) u{tail}"
    else:
        select = [f"u.{q('r_' + k)}" for k in keys]
        default_order = [f"u.{q('r_pk')} DESC"]
        sql = f"SELECT {', '.join(select)} FROM ({union}) u"
    order = []
    if sort := definition["sort"]:
        order.append(f"{q('r_' + sort['key'])} {'DESC' if sort['desc'] else 'ASC'} NULLS LAST")
    sql += f" ORDER BY {', '.join(order + default_order)} LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, cap])
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return rows, keys


def describe_filters(definition):
    """The filters as (label, text) pairs, as the user chose them."""
    fields = SOURCES[definition["source"]].field_map()
    described = [(str(_("Source")), str(SOURCES[definition["source"]].label))]
    if definition.get("archive"):
        described.append((str(_("Archive")), str(_("included"))))
    for item in definition["filters"]:
        field_def = fields[item["field"]]
        text = str(OPERATORS[item["op"]])
        if field_def.kind == CONSENTS:
            purpose = _parse_value(field_def, item["value"])
            text = _("%(purpose)s: %(condition)s") % {
                "purpose": dict(field_def.choice_list())[purpose],
                "condition": text,
            }
        elif item["op"] not in VALUELESS:
            text = f"{text} {item['value']}"
        described.append((str(field_def.label), text))
    return described


def chart_of(definition, columns, rows):
    from reports.exports import Chart

    numeric = [i for i, (_k, _l, kind) in enumerate(columns) if i >= len(definition["group_by"])]
    shown = rows[:CHART_CATEGORIES]
    width = len(definition["group_by"])
    categories = [
        " / ".join(str(v if v not in (None, "") else "—") for v in r[:width]) for r in shown
    ]
    series = [
        (columns[i][1], [float(r[i]) if r[i] is not None else 0.0 for r in shown]) for i in numeric
    ]
    return Chart(kind=definition["chart"], categories=categories, series=series)


def build_table(definition, user, *, title="", limit=None):
    """The report as a reports.exports.Table for `user`; the definition is validated first."""
    from reports.exports import Column, Table

    definition = validate_definition(definition)
    columns = columns_of(definition)
    rows = rows_of(definition, user, limit=limit)
    chart = None
    if definition["group_by"]:
        rows = list(rows)
        if definition["chart"]:
            chart = chart_of(definition, columns, rows)
    return Table(
        title=title or str(_("Report")),
        columns=[Column(label=label, kind=kind) for _key, label, kind in columns],
        rows=rows,
        filters=describe_filters(definition),
        chart=chart,
        aggregated=bool(definition["group_by"]),
    )


def table_from_spec(spec, user):
    """The Table of a saved report for a generated file: spec {"kind": "report", "report": id}.

    Raises SavedReport.DoesNotExist when the user may not see the report (or it is gone).
    """
    from reports.models import SavedReport

    try:
        report = SavedReport.objects.visible_to(user).get(pk=spec["report"])
    except (ValidationError, ValueError):  # not a report id at all
        raise SavedReport.DoesNotExist from None
    return report.table(user)
