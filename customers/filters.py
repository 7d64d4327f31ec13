import uuid

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from customers import consents
from customers.models import ConsentPurpose as Purpose
from customers.models import CustomField, Gender, Order, Source, Status
from customers.search import MAX_QUERY_LENGTH
from reports.metrics import AGE_BAND_CHOICES, age_band_q
from reports.models.metrics import Segment

# The value of a filter that selects customers with no value (no province, no owner, ...).
NONE = "none"

# The sorts a list offers: name -> the keyset order (the last field is unique).
SORTS = {
    "-created": ("-created_at", "-id"),
    "created": ("created_at", "id"),
    "-updated": ("-updated_at", "-id"),
    "updated": ("updated_at", "id"),
    "name": ("name_pinyin", "id"),
    "-name": ("-name_pinyin", "-id"),
    "company": ("company", "id"),
    "-company": ("-company", "-id"),
    "status": ("status", "created_at", "id"),
    "-status": ("-status", "-created_at", "-id"),
    # Sorts on reports.CustomerMetrics, through annotations (METRIC_SORTS) that match the
    # metrics table's indexes.
    "ltv": ("sort_ltv", "id"),
    "-ltv": ("-sort_ltv", "-id"),
    "revenue": ("sort_revenue", "id"),
    "-revenue": ("-sort_revenue", "-id"),
    "last_order": ("sort_last_order", "id"),
    "-last_order": ("-sort_last_order", "-id"),
}
DEFAULT_SORT = "-created"
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


# Rendering the filter panel (a dozen widgets, each a template) costs more than the rest of the
# list page, so the rendered panel is cached. Its choices (users, teams, custom fields, tags) are
# part of the cache key through this version, which changes whenever one of them does.
FILTER_OPTIONS_KEY = "customers:filter-options-version"


def filter_options_version():
    return cache.get_or_set(FILTER_OPTIONS_KEY, lambda: uuid.uuid4().hex, timeout=24 * 60 * 60)


# The active custom fields, for the filter options version they were read at. Every list request
# reads the version anyway, so this spares it a query while the definitions stay the same.
_custom_fields = {}


def active_custom_fields():
    version = filter_options_version()
    if version not in _custom_fields:
        _custom_fields.clear()
        _custom_fields[version] = list(CustomField.objects.filter(active=True))
    return _custom_fields[version]


def forget_filter_options(**kwargs):
    if kwargs.get("update_fields") and set(kwargs["update_fields"]) <= {"last_login", "language"}:
        return  # signing in and choosing a language change nothing the filters show
    cache.delete(FILTER_OPTIONS_KEY)


def metric_sort_annotations():
    """What the metric sorts order by: the expressions of the metrics table's indexes."""
    from reports.models.metrics import NEVER

    return {
        "sort_ltv": Coalesce(
            F("metrics__predicted_ltv"),
            Value(0),
            output_field=models.DecimalField(max_digits=16, decimal_places=2),
        ),
        "sort_revenue": F("metrics__revenue"),
        "sort_last_order": Coalesce(
            F("metrics__last_order_at"), Value(NEVER), output_field=models.DateTimeField()
        ),
    }


def sorted_customers(queryset, sort):
    """`queryset` ready to be paged in `sort`: metric sorts join every customer's metrics row
    (one exists for each, kept by a trigger), as an inner join whose index gives the order."""
    names = [name.lstrip("-") for name in SORTS[sort]]
    annotations = {k: v for k, v in metric_sort_annotations().items() if k in names}
    if not annotations:
        return queryset
    return queryset.filter(metrics__isnull=False).annotate(**annotations)


def consent_choices():
    """ "<purpose>" for customers who consent to it now, "no_<purpose>" for those who do not
    (withdrawn or never asked); built per request, in its language."""
    granted = [(p, _("%(purpose)s: granted") % {"purpose": label}) for p, label in Purpose.choices]
    refused = [
        (f"no_{p}", _("%(purpose)s: not granted") % {"purpose": label})
        for p, label in Purpose.choices
    ]
    return granted + refused


def _none_or(field_name):
    """A filter method: customers without a value for "none", else the exact value."""

    def method(queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(**{field_name: "" if value == NONE else value})

    return method


def split_tags(value):
    return list(dict.fromkeys(t.strip() for t in value.replace("，", ",").split(",") if t.strip()))


class CustomerFilter(django_filters.FilterSet):
    """Filters for the customer list; always given a queryset already scoped to the user."""

    q = django_filters.CharFilter(
        method="filter_search",
        label=_("Search"),
        max_length=MAX_QUERY_LENGTH,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "autocomplete": "off",
                "form": "list-form",
                "data-live-search": "",
                "placeholder": _("Name, pinyin, phone, email or company"),
            }
        ),
    )
    # Not distinct (django-filter's default for this filter): a column of the customer itself
    # cannot repeat rows, and SELECT DISTINCT would sort every match before the first page.
    status = django_filters.MultipleChoiceFilter(
        choices=Status.choices,
        label=_("Status"),
        widget=forms.CheckboxSelectMultiple,
        distinct=False,
    )
    source = django_filters.MultipleChoiceFilter(
        choices=Source.choices,
        label=_("Source channel"),
        widget=forms.CheckboxSelectMultiple,
        distinct=False,
    )
    tags = django_filters.CharFilter(
        method="filter_tags",
        label=_("Tags"),
        help_text=_("Separate tags with commas; customers must have all of them."),
        max_length=300,
        widget=forms.TextInput(attrs={"list": "tag-suggestions", "autocomplete": "off"}),
    )
    province = django_filters.CharFilter(
        label=_("Province"),
        max_length=50,
        method=_none_or("province"),
        help_text=_('"none": customers without one.'),
        widget=forms.TextInput(attrs={"list": "provinces"}),
    )
    city = django_filters.CharFilter(label=_("City"), max_length=50, method=_none_or("city"))
    owner = django_filters.ModelChoiceFilter(
        queryset=get_user_model().objects.filter(is_active=True),
        label=_("Owner"),
        empty_label=_("Any"),
        null_label=_("No owner"),
        null_value=NONE,
    )
    team = django_filters.ModelChoiceFilter(
        queryset=Team.objects.all(),
        label=_("Team"),
        empty_label=_("Any"),
        null_label=_("No team"),
        null_value=NONE,
    )
    gender = django_filters.MultipleChoiceFilter(
        choices=[(g, label) for g, label in Gender.choices if g] + [(NONE, _("Not specified"))],
        label=_("Gender"),
        widget=forms.CheckboxSelectMultiple,
        method="filter_gender",
    )
    age_band = django_filters.MultipleChoiceFilter(
        choices=AGE_BAND_CHOICES,
        label=_("Age"),
        widget=forms.CheckboxSelectMultiple,
        method="filter_age_band",
    )
    segment = django_filters.MultipleChoiceFilter(
        choices=[*Segment.choices, (NONE, _("No orders yet"))],
        label=_("Customer segment"),
        widget=forms.CheckboxSelectMultiple,
        method="filter_segment",
    )
    first_purchase = django_filters.DateFromToRangeFilter(
        field_name="metrics__first_order_at",
        label=_("First purchase between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    ltv_min = django_filters.NumberFilter(
        field_name="metrics__predicted_ltv",
        lookup_expr="gte",
        label=_("Lifetime value from"),
        max_digits=16,
        decimal_places=2,
    )
    ltv_max = django_filters.NumberFilter(
        field_name="metrics__predicted_ltv",
        lookup_expr="lte",
        label=_("Lifetime value to"),
        max_digits=16,
        decimal_places=2,
    )
    created = django_filters.DateFromToRangeFilter(
        field_name="created_at",
        label=_("Created between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    # Current consent, from Customer.consented_purposes (GIN-indexed, kept by triggers): for
    # marketing lists and exports that must reach only customers who agreed.
    consent = django_filters.MultipleChoiceFilter(
        choices=[],  # in the request's language, set in __init__
        label=_("Consent"),
        help_text=_("Customers must match every choice."),
        widget=forms.CheckboxSelectMultiple,
        method="filter_consent",
    )
    has_orders = django_filters.BooleanFilter(
        method="filter_has_orders",
        label=_("Has orders"),
        widget=forms.Select(choices=[("", _("Any")), ("true", _("Yes")), ("false", _("No"))]),
    )

    def __init__(self, data=None, *args, **kwargs):
        # Saved views and links from before "none" say "null" for no owner or team.
        if data is not None and any(data.get(name) == "null" for name in ("owner", "team")):
            data = data.copy()
            for name in ("owner", "team"):
                if data.get(name) == "null":
                    data[name] = NONE
        super().__init__(data, *args, **kwargs)
        self.filters["consent"].extra["choices"] = consent_choices()
        self.custom_fields = active_custom_fields()
        for field in self.custom_fields:
            self.filters.update(_attribute_filters(field))

    def filter_search(self, queryset, name, value):
        return queryset.search(value)

    def filter_tags(self, queryset, name, value):
        tags = split_tags(value)
        return queryset.with_tags(tags) if tags else queryset

    def filter_gender(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(gender__in=["" if v == NONE else v for v in value])

    def filter_age_band(self, queryset, name, value):
        condition = Q()
        for key in value:
            condition |= age_band_q(key)
        return queryset.filter(condition) if value else queryset

    def filter_segment(self, queryset, name, value):
        if not value:
            return queryset
        condition = Q(metrics__segment__in=[v for v in value if v != NONE])
        if NONE in value:
            condition |= Q(metrics__segment__isnull=True)
        return queryset.filter(condition)

    def filter_consent(self, queryset, name, value):
        granted = [v for v in value if not v.startswith("no_")]
        refused = [v.removeprefix("no_") for v in value if v.startswith("no_")]
        if granted:
            queryset = consents.consenting(queryset, *granted)
        if refused:
            queryset = consents.not_consenting(queryset, *refused)
        return queryset

    def filter_has_orders(self, queryset, name, value):
        if value is None:
            return queryset
        has = Exists(Order.objects.filter(customer=OuterRef("pk")))
        return queryset.filter(has if value else ~has)

    def panel_cache_key(self):
        """What the rendered filter panel depends on, apart from the language."""
        values = self.data.copy()
        for name in ("q", "size", "after", "before", "page"):
            values.pop(name, None)
        return f"{filter_options_version()}?{values.urlencode()}"

    @property
    def active_filters(self):
        """How many filters other than the search box are set, to show on the filter toggle."""
        count = 0
        for name in self.form.fields:
            value = self.form[name].value()
            values = value if isinstance(value, (list, tuple)) else [value]
            count += name != "q" and any(v not in (None, "") for v in values)
        return count


# Filters on what only live customers have (their analytics figures and live orders).
LIVE_ONLY_FILTERS = ("segment", "first_purchase", "ltv_min", "ltv_max", "has_orders")


class ArchivedCustomerFilter(CustomerFilter):
    """The list's search and filters applied to archived customers, which have the same
    columns; filters on analytics and orders are live-only (see `unsupported`). The list shows
    them when asked to include the archive (its `archive` parameter, `include_archive`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in LIVE_ONLY_FILTERS:
            self.filters.pop(name)

    def unsupported(self):
        """The labels of live-only filters that are set: the archive cannot answer them."""
        live = CustomerFilter(self.data, queryset=self.queryset.none())
        if not live.is_valid():
            return []
        labels = []
        for name in LIVE_ONLY_FILTERS:
            value = live.form.cleaned_data.get(name)
            values = [value.start, value.stop] if isinstance(value, slice) else [value]
            if any(v not in (None, "", []) for v in values):
                labels.append(str(live.filters[name].label))
        return labels


def _attribute_filters(field):
    """Filters on one custom attribute, named attr_<key> (and _min / _max for ranges)."""
    name = f"attr_{field.key}"
    label = field.display_label
    lookup = f"attributes__{field.key}"

    def contains(queryset, _name, value):
        if value in (None, "", []):
            return queryset
        return queryset.filter(attributes__contains={field.key: value})

    if field.type == CustomField.Type.CHOICE:
        choices = [(c, c) for c in field.choices]
        return {name: django_filters.ChoiceFilter(choices=choices, label=label, method=contains)}
    if field.type == CustomField.Type.MULTI_CHOICE:
        choices = [(c, c) for c in field.choices]
        return {
            name: django_filters.MultipleChoiceFilter(
                choices=choices,
                label=label,
                method=lambda qs, n, value: contains(qs, n, sorted(value)),
                widget=forms.CheckboxSelectMultiple,
            )
        }
    if field.type == CustomField.Type.BOOLEAN:
        return {
            name: django_filters.BooleanFilter(
                label=label,
                method=contains,
                widget=forms.Select(
                    choices=[("", _("Any")), ("true", _("Yes")), ("false", _("No"))]
                ),
            )
        }
    if field.type == CustomField.Type.NUMBER:
        # Compared as the JSON number it is stored as: the Decimal a NumberFilter gives cannot
        # be sent as JSON. Digits are bounded as in the edit form.
        def number(op):
            return lambda qs, n, v: (
                qs if v is None else qs.filter(**{f"{lookup}__{op}": field.to_json(v)})
            )

        bounds = {"max_digits": 20, "decimal_places": 6}
        return {
            f"{name}_min": django_filters.NumberFilter(
                method=number("gte"), label=_("%(field)s from") % {"field": label}, **bounds
            ),
            f"{name}_max": django_filters.NumberFilter(
                method=number("lte"), label=_("%(field)s to") % {"field": label}, **bounds
            ),
        }
    if field.type == CustomField.Type.DATE:
        widget = forms.DateInput(attrs={"type": "date"})
        return {
            f"{name}_min": django_filters.DateFilter(
                method=lambda qs, n, v: qs.filter(**{f"{lookup}__gte": v.isoformat()}) if v else qs,
                label=_("%(field)s from") % {"field": label},
                widget=widget,
            ),
            f"{name}_max": django_filters.DateFilter(
                method=lambda qs, n, v: qs.filter(**{f"{lookup}__lte": v.isoformat()}) if v else qs,
                label=_("%(field)s to") % {"field": label},
                widget=widget,
            ),
        }
    return {
        name: django_filters.CharFilter(label=label, method=contains, max_length=500),
    }


def include_archive(query):
    """Whether the list's query asks for archived customers too (the "Include archive" box)."""
    return query.get("archive") in ("on", "1", "true")
