"""Forms of the report builder, of saving a pivot, and of sharing a saved report."""

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from reports import reporting
from reports.models import SavedReport

FILTER_ROWS = 5


class _NamedForOwner(forms.Form):
    """A report name, unique among the owner's reports."""

    name = forms.CharField(label=gettext_lazy("Name"), max_length=200, required=False)

    def __init__(self, *args, owner, instance=None, name_required=True, **kwargs):
        self.owner, self.instance, self.name_required = owner, instance, name_required
        super().__init__(*args, **kwargs)

    def clean_name(self):
        name = " ".join(self.cleaned_data.get("name", "").split())
        if not name:
            if self.name_required:
                raise ValidationError(_("Give the report a name."))
            return name
        taken = SavedReport.objects.filter(owner=self.owner, name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(_("You already have a report with this name."))
        return name


class SaveAnalysisForm(_NamedForOwner):
    pass


class RenameForm(_NamedForOwner):
    pass


class ReportForm(_NamedForOwner):
    """The builder: source, columns or grouping with figures, filters, sort, limit, chart.

    The choices depend on the source, chosen first (the page reloads with it). Everything is
    checked again by reporting.validate_definition, which the stored definition must pass.
    """

    source = forms.ChoiceField(label=gettext_lazy("Report on"), widget=forms.HiddenInput)
    columns = forms.MultipleChoiceField(
        label=gettext_lazy("Columns"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Shown when nothing is grouped: one row per record."),
    )
    group_by_1 = forms.ChoiceField(label=gettext_lazy("Group by"), required=False)
    group_by_2 = forms.ChoiceField(label=gettext_lazy("Then by"), required=False)
    sort_key = forms.ChoiceField(label=gettext_lazy("Sort by"), required=False)
    sort_desc = forms.BooleanField(label=gettext_lazy("Largest first"), required=False)
    limit = forms.IntegerField(
        label=gettext_lazy("At most this many rows"),
        required=False,
        min_value=1,
        max_value=settings.REPORT_MAX_ROWS,
    )
    archive = forms.BooleanField(
        label=gettext_lazy("Include archive"),
        required=False,
        help_text=gettext_lazy(
            "Also count archived customers and archived orders and interactions."
        ),
    )
    chart = forms.ChoiceField(
        label=gettext_lazy("Chart"),
        required=False,
        choices=[
            ("", gettext_lazy("No chart")),
            ("bar", gettext_lazy("Bars")),
            ("line", gettext_lazy("Line")),
            ("pie", gettext_lazy("Pie")),
        ],
        help_text=gettext_lazy("For grouped reports: the groups and their figures."),
    )

    def __init__(self, *args, source, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = reporting.SOURCES[source]
        fields = self.source.fields()
        self.fields["source"].choices = [(k, s.label) for k, s in reporting.SOURCES.items()]
        self.fields["source"].initial = source
        self.fields["columns"].choices = [
            (f.key, f.label) for f in fields if f.column and f.kind != reporting.PERIOD
        ]
        groups = [("", _("(none)"))] + [(f.key, f.label) for f in fields if f.group]
        self.fields["group_by_1"].choices = groups
        self.fields["group_by_2"].choices = groups
        measurable = [("", _("(choose a field)"))] + [
            (f.key, f.label) for f in fields if f.orderable
        ]
        self.aggregate_rows = []
        for i in range(reporting.MAX_AGGREGATES):
            self.fields[f"agg_{i}_func"] = forms.ChoiceField(
                label=_("Figure %(n)s") % {"n": i + 1},
                required=False,
                choices=[("", "—"), *reporting.AGGREGATES.items()],
            )
            self.fields[f"agg_{i}_field"] = forms.ChoiceField(
                label=_("of"), required=False, choices=measurable
            )
            self.aggregate_rows.append((f"agg_{i}_func", f"agg_{i}_field"))
        filterable = [("", "—")] + [(f.key, f.label) for f in fields if f.operators]
        self.filter_rows = []
        for i in range(FILTER_ROWS):
            self.fields[f"filter_{i}_field"] = forms.ChoiceField(
                label=_("Filter %(n)s") % {"n": i + 1}, required=False, choices=filterable
            )
            self.fields[f"filter_{i}_op"] = forms.ChoiceField(
                label=_("condition"), required=False, choices=list(reporting.OPERATORS.items())
            )
            self.fields[f"filter_{i}_value"] = forms.CharField(
                label=_("value"), required=False, max_length=reporting.MAX_VALUE_LENGTH
            )
            self.filter_rows.append((f"filter_{i}_field", f"filter_{i}_op", f"filter_{i}_value"))
        sortable = [(f.key, f.label) for f in fields]
        sortable.append(("count", reporting.AGGREGATES["count"]))
        for f in fields:
            if f.orderable:
                for func in ("sum", "avg", "min", "max"):
                    if func in ("sum", "avg") and not f.summable:
                        continue
                    sortable.append((f"{func}_{f.key}", f"{reporting.AGGREGATES[func]}: {f.label}"))
        self.fields["sort_key"].choices = [("", _("(default order)")), *sortable]
        self.definition = None

    # Bound fields of the repeated rows, for the template.
    def aggregate_fields(self):
        return [(self[func], self[field]) for func, field in self.aggregate_rows]

    def filter_fields(self):
        return [(self[f], self[o], self[v]) for f, o, v in self.filter_rows]

    def clean(self):
        cleaned = super().clean()
        fields = self.source.field_map()
        filters = []
        for field_name, op_name, value_name in self.filter_rows:
            key = cleaned.get(field_name)
            if not key:
                continue
            op, value = cleaned.get(op_name), cleaned.get(value_name, "")
            try:
                reporting.parse_filter(fields, key, op, value)
            except ValidationError as error:
                self.add_error(value_name, error)
                continue
            filters.append({"field": key, "op": op, "value": value})
        aggregates = []
        for func_name, field_name in self.aggregate_rows:
            func = cleaned.get(func_name)
            if func:
                aggregates.append({"func": func, "field": cleaned.get(field_name) or ""})
        group_by = [g for g in (cleaned.get("group_by_1"), cleaned.get("group_by_2")) if g]
        sort = None
        if cleaned.get("sort_key"):
            sort = {"key": cleaned["sort_key"], "desc": cleaned.get("sort_desc", False)}
        definition = {
            "source": self.source.key,
            "columns": cleaned.get("columns", []),
            "filters": filters,
            "group_by": group_by,
            "aggregates": aggregates,
            "sort": sort,
            "limit": cleaned.get("limit"),
            "chart": cleaned.get("chart", ""),
            "archive": cleaned.get("archive", False),
        }
        if self.errors:
            return cleaned
        try:
            self.definition = reporting.validate_definition(definition)
        except ValidationError as error:
            for message in error.messages:
                self.add_error(None, message)
        return cleaned

    @staticmethod
    def initial_from(report):
        """The form's initial values for a saved report's definition."""
        definition = report.definition
        initial = {
            "name": report.name,
            "source": definition.get("source"),
            "columns": definition.get("columns", []),
            "limit": definition.get("limit"),
            "chart": definition.get("chart", ""),
            "archive": definition.get("archive", False),
        }
        for i, key in enumerate(definition.get("group_by", [])[:2]):
            initial[f"group_by_{i + 1}"] = key
        for i, aggregate in enumerate(definition.get("aggregates", [])):
            initial[f"agg_{i}_func"] = aggregate["func"]
            initial[f"agg_{i}_field"] = aggregate.get("field", "")
        for i, item in enumerate(definition.get("filters", [])[:FILTER_ROWS]):
            initial[f"filter_{i}_field"] = item["field"]
            initial[f"filter_{i}_op"] = item["op"]
            initial[f"filter_{i}_value"] = item["value"]
        if sort := definition.get("sort"):
            initial["sort_key"], initial["sort_desc"] = sort["key"], sort["desc"]
        return initial


class GroupChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, group):
        team = getattr(group, "team", None)
        if team is not None:
            return _("Team: %(name)s") % {"name": team.name}
        return _("Role: %(name)s") % {"name": group.name}


class UserChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user):
        full = user.get_full_name()
        return f"{full} ({user.get_username()})" if full else user.get_username()


class ShareForm(forms.Form):
    shared_with_groups = GroupChoiceField(
        label=gettext_lazy("Roles and teams"),
        queryset=Group.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    shared_with_users = UserChoiceField(
        label=gettext_lazy("Users"),
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "They run the report with their own permissions: each sees only the customers "
            "they may see."
        ),
    )

    def __init__(self, *args, report, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "shared_with_groups": list(report.shared_with_groups.all()),
                "shared_with_users": list(report.shared_with_users.all()),
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["shared_with_groups"].queryset = Group.objects.select_related("team").order_by(
            "name"
        )
        self.fields["shared_with_users"].queryset = (
            get_user_model()
            .objects.filter(is_active=True)
            .exclude(pk=report.owner_id)
            .order_by("username")
        )
