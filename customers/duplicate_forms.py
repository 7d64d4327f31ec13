from django import forms
from django.utils.translation import gettext_lazy as _

from customers import places
from customers.masking import SENSITIVE_FIELDS, mask
from customers.merging import FIELD_GROUPS
from customers.models import CustomField, DuplicateReason
from customers.phones import format_phone

SIDES = (("a", "A"), ("b", "B"))


class CandidateFilterForm(forms.Form):
    reason = forms.ChoiceField(
        label=_("Reason"),
        required=False,
        choices=[("", _("Any reason")), *DuplicateReason.choices],
    )
    min_score = forms.IntegerField(
        label=_("Score at least"), required=False, min_value=0, max_value=100
    )

    def filter(self, candidates):
        if reason := self.cleaned_data.get("reason"):
            candidates = candidates.filter(reasons__contains=[reason])
        if (score := self.cleaned_data.get("min_score")) is not None:
            candidates = candidates.filter(score__gte=score)
        return candidates


class MergeForm(forms.Form):
    """Which customer is kept and, where the two differ, whose value each field takes.

    The customers are shown as A (the one created first) and B, so the choices do not move when
    the kept customer changes; `merge_arguments` turns them into the survivor's terms.
    """

    survivor = forms.ChoiceField(
        label=_("Keep the record of"), choices=SIDES, initial="a", widget=forms.RadioSelect
    )
    version_a = forms.IntegerField(widget=forms.HiddenInput)
    version_b = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, customer_a, customer_b, show_sensitive, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer_a, self.customer_b = customer_a, customer_b
        self.show_sensitive = show_sensitive
        self.fields["version_a"].initial = customer_a.version
        self.fields["version_b"].initial = customer_b.version
        self.rows = []
        for key, label, names in FIELD_GROUPS:
            a, b = self._values(customer_a, names), self._values(customer_b, names)
            self._add_row(
                f"take_{key}",
                label,
                a,
                b,
                self._shown(customer_a, names),
                self._shown(customer_b, names),
                key in ("phone", "email", "birthday", "address"),
            )
        self._add_notes_row()
        labels = {f.key: f.display_label for f in CustomField.objects.all()}
        for attribute in sorted(set(customer_a.attributes) | set(customer_b.attributes)):
            a, b = customer_a.attributes.get(attribute), customer_b.attributes.get(attribute)
            self._add_row(
                f"attr_{attribute}", labels.get(attribute, attribute), a, b,
                _display(a), _display(b), False, choose_empty=False,
            )  # fmt: skip
        self.tags = list(dict.fromkeys([*customer_a.tags, *customer_b.tags]))

    def _values(self, customer, names):
        values = []
        for name in names:
            field = customer._meta.get_field(name)
            values.append(getattr(customer, field.attname if field.is_relation else name))
        return tuple(values)

    def _shown(self, customer, names):
        """The group's value as the page shows it; a name by its display form alone."""
        parts = []
        for name in names[:1] if names[0] == "display_name" else names:
            field = customer._meta.get_field(name)
            value = getattr(customer, name)
            if value in (None, ""):
                continue
            if name in SENSITIVE_FIELDS and not self.show_sensitive:
                value = mask(name, value)
            elif name == "phone":
                value = format_phone(value)
            elif name == "country":
                value = places.country_name(value)
            elif field.choices:
                value = getattr(customer, f"get_{name}_display")()
            parts.append(str(value))
        return " ".join(parts)

    def _add_row(self, name, label, a, b, shown_a, shown_b, sensitive, *, choose_empty=True):
        a_empty, b_empty = _is_empty(a), _is_empty(b)
        same = a == b or (a_empty and b_empty)
        row = {"name": name, "label": label, "a": shown_a, "b": shown_b, "same": same}
        if not same and not choose_empty and (a_empty or b_empty):
            # Kept whichever customer is kept, as tags are.
            row["combined"] = True
        elif not same:
            initial = "b" if a_empty else "a"
            self.fields[name] = forms.ChoiceField(
                label=label, choices=SIDES, initial=initial, widget=forms.RadioSelect
            )
            row["sensitive"] = sensitive
        self.rows.append(row)

    def _add_notes_row(self):
        a, b = self.customer_a.notes.strip(), self.customer_b.notes.strip()
        row = {"name": "notes", "label": _("Notes"), "a": a, "b": b, "same": a == b}
        if a and b and a != b:
            self.fields["notes"] = forms.ChoiceField(
                label=_("Notes"),
                choices=[*SIDES, ("both", _("Both"))],
                initial="both",
                widget=forms.RadioSelect,
            )
        elif a != b:
            row["combined"] = True
        self.rows.append(row)

    def bound_rows(self):
        """The rows for the template, each with its chosen side (the submitted or initial)."""
        for row in self.rows:
            if row["name"] in self.fields:
                row["field"] = self[row["name"]]
                row["value"] = row["field"].value()
        return self.rows

    def merge_arguments(self):
        """Keyword arguments for merging.merge_customers, from the cleaned data."""
        data = self.cleaned_data
        survivor_side = data["survivor"]
        merged_side = "b" if survivor_side == "a" else "a"
        survivor, merged = (
            (self.customer_a, self.customer_b)
            if survivor_side == "a"
            else (self.customer_b, self.customer_a)
        )
        versions = {"a": data["version_a"], "b": data["version_b"]}
        take = [
            key for key, _label, _names in FIELD_GROUPS if data.get(f"take_{key}") == merged_side
        ]
        attributes = [
            name.removeprefix("attr_")
            for name in self.fields
            if name.startswith("attr_") and data.get(name) == merged_side
        ]
        notes = data.get("notes") or "both"
        if notes in ("a", "b"):
            notes = "survivor" if notes == survivor_side else "merged"
        return {
            "survivor": survivor,
            "merged": merged,
            "survivor_version": versions[survivor_side],
            "merged_version": versions[merged_side],
            "take": take,
            "notes": notes,
            "attributes": attributes,
        }


class UndoForm(forms.Form):
    confirmed = forms.BooleanField(
        label=_("Undo anyway, keeping the later changes"), required=False
    )


def _is_empty(value):
    values = value if isinstance(value, tuple) else (value,)
    return all(v in (None, "", [], {}) for v in values)


def _display(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
