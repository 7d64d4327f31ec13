import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from customers.models import CustomField, Order, Source, Status
from customers.search import MAX_QUERY_LENGTH

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
}
DEFAULT_SORT = "-created"
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


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
    status = django_filters.MultipleChoiceFilter(
        choices=Status.choices, label=_("Status"), widget=forms.CheckboxSelectMultiple
    )
    source = django_filters.MultipleChoiceFilter(
        choices=Source.choices, label=_("Source channel"), widget=forms.CheckboxSelectMultiple
    )
    tags = django_filters.CharFilter(
        method="filter_tags",
        label=_("Tags"),
        help_text=_("Separate tags with commas; customers must have all of them."),
        max_length=300,
        widget=forms.TextInput(attrs={"list": "tag-suggestions", "autocomplete": "off"}),
    )
    province = django_filters.CharFilter(
        label=_("Province"), max_length=50, widget=forms.TextInput(attrs={"list": "provinces"})
    )
    city = django_filters.CharFilter(label=_("City"), max_length=50)
    owner = django_filters.ModelChoiceFilter(
        queryset=get_user_model().objects.filter(is_active=True),
        label=_("Owner"),
        null_label=_("No owner"),
    )
    team = django_filters.ModelChoiceFilter(
        queryset=Team.objects.all(), label=_("Team"), null_label=_("No team")
    )
    created = django_filters.DateFromToRangeFilter(
        field_name="created_at",
        label=_("Created between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    has_orders = django_filters.BooleanFilter(
        method="filter_has_orders",
        label=_("Has orders"),
        widget=forms.Select(choices=[("", _("Any")), ("true", _("Yes")), ("false", _("No"))]),
    )

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.custom_fields = list(CustomField.objects.filter(active=True))
        for field in self.custom_fields:
            self.filters.update(_attribute_filters(field))

    def filter_search(self, queryset, name, value):
        return queryset.search(value)

    def filter_tags(self, queryset, name, value):
        tags = split_tags(value)
        return queryset.with_tags(tags) if tags else queryset

    def filter_has_orders(self, queryset, name, value):
        if value is None:
            return queryset
        has = Exists(Order.objects.filter(customer=OuterRef("pk")))
        return queryset.filter(has if value else ~has)

    @property
    def active_filters(self):
        """How many filters other than the search box are set, to show on the filter toggle."""
        count = 0
        for name in self.form.fields:
            value = self.form[name].value()
            values = value if isinstance(value, (list, tuple)) else [value]
            count += name != "q" and any(v not in (None, "") for v in values)
        return count


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
        return {
            f"{name}_min": django_filters.NumberFilter(
                field_name=lookup, lookup_expr="gte", label=_("%(field)s from") % {"field": label}
            ),
            f"{name}_max": django_filters.NumberFilter(
                field_name=lookup, lookup_expr="lte", label=_("%(field)s to") % {"field": label}
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
