import datetime
import uuid

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from accounts.permissions import (
    CHANGE,
    VIEW,
    assignable_owners,
    assignable_teams,
    can_view_sensitive,
)
from customers import places
from customers.consent_forms import require_wording_for_grants
from customers.filters import active_custom_fields, split_tags
from customers.masking import SENSITIVE_FIELDS
from customers.models import (
    BulkAction,
    Consent,
    Customer,
    CustomField,
    Interaction,
    Order,
    SavedView,
    Status,
)
from customers.phones import format_phone, normalize_phone
from customers.search import normalize_email

MAX_TAGS = 20
DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def active_users():
    return get_user_model().objects.filter(is_active=True).order_by("username")


class TagsField(forms.CharField):
    """Tags typed as one comma-separated line (Chinese commas too)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 1100)
        kwargs.setdefault("help_text", _("Separate tags with commas."))
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"list": "tag-suggestions", "autocomplete": "off"})
        )
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        tags = split_tags(super().to_python(value))
        if len(tags) > MAX_TAGS:
            raise ValidationError(_("At most %(max)d tags.") % {"max": MAX_TAGS})
        if any(len(tag) > 50 for tag in tags):
            raise ValidationError(_("A tag can be at most 50 characters long."))
        return tags


class CustomerForm(forms.ModelForm):
    tags = TagsField(label=_("Tags"), required=False)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    class Meta:
        model = Customer
        fields = [
            "display_name",
            "family_name",
            "given_name",
            "gender",
            "birthday",
            "email",
            "phone",
            "company",
            "job_title",
            "country",
            "province",
            "city",
            "district",
            "street",
            "postcode",
            "source",
            "status",
            "tags",
            "owner",
            "team",
            "notes",
            "external_id",
        ]
        widgets = {
            "birthday": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "email": forms.EmailInput(attrs={"autocomplete": "off"}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "province": forms.TextInput(attrs={"list": "provinces"}),
            "notes": forms.Textarea(attrs={"rows": 4}),
            "country": forms.Select(choices=places.country_choices()),
        }
        help_texts = {"phone": _("Any common format, e.g. 138 0013 8000 or +86 138 0013 8000.")}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["display_name"].required = False
        self.fields["display_name"].help_text = _(
            "Left empty, it is made from the family and given names."
        )
        # Owners and teams are those the user may hand customers to; the current ones stay
        # valid choices so that an unchanged form saves.
        self.fields["owner"].queryset = assignable_owners(user, self.instance.owner_id)
        self.fields["team"].queryset = assignable_teams(user, self.instance.team_id)
        if not can_view_sensitive(user):
            # Without the permission the values are never sent, so they cannot be changed.
            for name in SENSITIVE_FIELDS:
                self.fields.pop(name, None)
        if not self.instance._state.adding:
            # The version the form was opened at; saving checks nobody saved in between.
            self.fields["version"].initial = self.instance.version
            self.fields["version"].required = True
            self.fields["version"].error_messages["required"] = _(
                "This form is out of date. Reload the page and make your changes again."
            )
            if "phone" in self.fields:
                self.initial["phone"] = format_phone(self.instance.phone)
        self.custom_fields = active_custom_fields()
        for definition in self.custom_fields:
            name = f"attr_{definition.key}"
            self.fields[name] = attribute_form_field(definition)
            value = self.instance.attributes.get(definition.key)
            if value is not None:
                self.initial[name] = value

    def attribute_fields(self):
        return [self[f"attr_{d.key}"] for d in self.custom_fields]

    def main_fields(self):
        return [f for f in self if not f.name.startswith("attr_") and not f.is_hidden]

    def clean_email(self):
        email = normalize_email(self.cleaned_data["email"])
        if email and (other := self._other_customer(Customer.objects.with_email(email))):
            raise ValidationError(self._duplicate_message(other, _("email")), code="duplicate")
        return email

    def clean_phone(self):
        raw = self.cleaned_data["phone"].strip()
        if not raw:
            return ""
        phone = normalize_phone(raw)
        if phone is None:
            raise ValidationError(
                _("Enter a valid mobile number, e.g. 138 0013 8000 or +86 138 0013 8000."),
                code="invalid",
            )
        if other := self._other_customer(Customer.objects.with_phone(phone)):
            raise ValidationError(
                self._duplicate_message(other, _("mobile number")), code="duplicate"
            )
        return phone

    def clean_birthday(self):
        birthday = self.cleaned_data["birthday"]
        if birthday and not (datetime.date(1900, 1, 1) <= birthday <= timezone.localdate()):
            raise ValidationError(_("Enter a birthday between 1900 and today."))
        return birthday

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("display_name", "").strip():
            name = Customer.name_from_parts(
                cleaned.get("family_name", ""), cleaned.get("given_name", "")
            )
            if not name:
                self.add_error("display_name", _("Enter a name, or a family and a given name."))
            cleaned["display_name"] = name
            self.instance.display_name = name
        return cleaned

    def _post_clean(self):
        attributes = {
            key: value
            for key, value in self.instance.attributes.items()
            if key not in {d.key for d in self.custom_fields}
        }
        for definition in self.custom_fields:
            value = definition.to_json(self.cleaned_data.get(f"attr_{definition.key}"))
            if value is not None:
                attributes[definition.key] = value
        self.instance.attributes = attributes
        super()._post_clean()

    def _other_customer(self, matches):
        # Email and phone are encrypted: matches come from their blind indexes.
        return matches.exclude(pk=self.instance.pk).first()

    def _duplicate_message(self, other, what):
        from accounts.permissions import can

        if can(self.user, "view", other):
            return _("Another customer, %(name)s, already has this %(what)s.") % {
                "name": other.display_name,
                "what": what,
            }
        return _("Another customer already has this %(what)s.") % {"what": what}


def attribute_form_field(definition):
    """The form field that edits one custom attribute."""
    kwargs = {"label": definition.display_label, "required": definition.required}
    Type = CustomField.Type
    if definition.type == Type.NUMBER:
        return forms.DecimalField(max_digits=20, decimal_places=6, **kwargs)
    if definition.type == Type.DATE:
        return forms.DateField(
            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), **kwargs
        )
    if definition.type == Type.CHOICE:
        choices = [("", "---------")] + [(c, c) for c in definition.choices]
        return forms.ChoiceField(choices=choices, **kwargs)
    if definition.type == Type.MULTI_CHOICE:
        return forms.MultipleChoiceField(
            choices=[(c, c) for c in definition.choices],
            widget=forms.CheckboxSelectMultiple,
            **kwargs,
        )
    if definition.type == Type.BOOLEAN:
        # A required yes/no must still allow "no": ask with a select of yes and no.
        return forms.TypedChoiceField(
            choices=[("", "---------"), ("true", _("Yes")), ("false", _("No"))],
            coerce=lambda v: v == "true",
            empty_value=None,
            **kwargs,
        )
    return forms.CharField(max_length=500, **kwargs)


def check_record_time(value):
    """The time of an interaction, order or consent, if it is in a plausible range.

    PostgreSQL stores a time in the year 1, but once in UTC it is before the year 1 and cannot
    be read back, which would break every page showing the customer.
    """
    if value and not (1900 <= value.year <= 2100):
        raise ValidationError(_("Enter a time between 1900 and 2100."))
    return value


class InteractionForm(forms.ModelForm):
    class Meta:
        model = Interaction
        fields = ["kind", "channel", "occurred_at", "summary"]
        widgets = {"occurred_at": DATETIME_WIDGET, "summary": forms.Textarea(attrs={"rows": 3})}

    def clean_occurred_at(self):
        return check_record_time(self.cleaned_data["occurred_at"])


class OrderForm(forms.ModelForm):
    amount = forms.DecimalField(
        label=_("amount"),
        max_digits=14,
        decimal_places=2,
        min_value=0,
        required=False,
        help_text=_("Left empty, it is the total of the lines."),
    )

    class Meta:
        model = Order
        fields = ["external_id", "ordered_at", "amount", "currency", "channel"]
        widgets = {
            "ordered_at": DATETIME_WIDGET,
            "currency": forms.TextInput(attrs={"list": "currencies", "maxlength": 3}),
        }

    def __init__(self, *args, lines=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = lines

    def clean_ordered_at(self):
        return check_record_time(self.cleaned_data["ordered_at"])

    def clean_currency(self):
        currency = self.cleaned_data["currency"].strip().upper()
        if not (len(currency) == 3 and currency.isalpha() and currency.isascii()):
            raise ValidationError(_("Enter a three-letter currency code such as CNY."))
        return currency

    def clean(self):
        cleaned = super().clean()
        lines = (
            self.lines.cleaned_lines() if self.lines is not None and self.lines.is_valid() else []
        )
        if cleaned.get("amount") is None:
            if lines:
                cleaned["amount"] = Order.total_of(lines)
                self.instance.amount = cleaned["amount"]
            elif "amount" not in self.errors:
                self.add_error("amount", _("Enter the amount, or at least one order line."))
        self.instance.lines = lines
        return cleaned


class OrderLineForm(forms.Form):
    product = forms.CharField(label=_("product"), max_length=200)
    quantity = forms.DecimalField(label=_("quantity"), max_digits=12, decimal_places=3, min_value=0)
    unit_price = forms.DecimalField(
        label=_("unit price"), max_digits=14, decimal_places=2, min_value=0
    )


class BaseOrderLineFormSet(forms.BaseFormSet):
    def cleaned_lines(self):
        return [
            {
                "product": form.cleaned_data["product"],
                "quantity": float(form.cleaned_data["quantity"]),
                "unit_price": str(form.cleaned_data["unit_price"]),
            }
            for form in self.forms
            if form.has_changed() and form.cleaned_data
        ]


OrderLineFormSet = forms.formset_factory(
    OrderLineForm,
    formset=BaseOrderLineFormSet,
    extra=3,
    max_num=100,
    absolute_max=100,
    validate_max=True,
)


class ConsentForm(forms.ModelForm):
    granted = forms.TypedChoiceField(
        label=_("decision"),
        choices=[("true", _("Granted")), ("false", _("Withdrawn"))],
        coerce=lambda v: v == "true",
        widget=forms.RadioSelect,
    )

    class Meta:
        model = Consent
        fields = ["purpose", "granted", "recorded_at", "source", "wording", "wording_version"]
        widgets = {"recorded_at": DATETIME_WIDGET, "wording": forms.Textarea(attrs={"rows": 3})}

    def clean_recorded_at(self):
        return check_record_time(self.cleaned_data["recorded_at"])

    def clean(self):
        return require_wording_for_grants(super().clean())


class SavedViewForm(forms.ModelForm):
    class Meta:
        model = SavedView
        fields = ["name"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        taken = SavedView.objects.filter(user=self.user, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(_("You already have a view with this name."))
        return name


class UUIDListField(forms.Field):
    """The ids of the customers ticked in a list."""

    widget = forms.MultipleHiddenInput
    max_items = 1000

    def to_python(self, value):
        if not value:
            return []
        if len(value) > self.max_items:
            raise ValidationError(
                _("Select at most %(max)d customers, or choose every matching customer.")
                % {"max": self.max_items}
            )
        try:
            return list(dict.fromkeys(uuid.UUID(v) for v in value))
        except (TypeError, ValueError, AttributeError) as error:
            raise ValidationError(_("The selection is not valid.")) from error


class BulkActionForm(forms.Form):
    """What to do to which customers; `confirmed` is set by the confirmation page."""

    action = forms.ChoiceField(label=_("Action"), choices=BulkAction.Action.choices)
    scope = forms.ChoiceField(
        choices=[("selected", _("Selected customers")), ("all", _("Every matching customer"))],
        initial="selected",
    )
    selected = UUIDListField(required=False)
    query = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)
    tags = TagsField(label=_("Tags"), required=False)
    owner = forms.ModelChoiceField(
        label=_("New owner"), queryset=active_users(), required=False, empty_label=_("No owner")
    )
    status = forms.ChoiceField(label=_("New status"), choices=Status.choices, required=False)
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = active_users()

    def clean(self):
        cleaned = super().clean()
        action, Action = cleaned.get("action"), BulkAction.Action
        if "selected" in self.errors:
            # The ids are hidden inputs, with no place beside them to show what is wrong.
            raise ValidationError(self.errors.pop("selected").as_data())
        if cleaned.get("scope") == "selected" and not cleaned.get("selected"):
            raise ValidationError(_("Select at least one customer."))
        if action in (Action.ADD_TAGS, Action.REMOVE_TAGS) and not cleaned.get("tags"):
            self.add_error("tags", _("Enter at least one tag."))
        if action == Action.SET_STATUS and not cleaned.get("status"):
            self.add_error("status", _("Choose a status."))
        return cleaned

    def bulk_action(self, *, user):
        """The (unsaved) BulkAction this form describes."""
        data = self.cleaned_data
        selected = data["scope"] == "selected"
        return BulkAction(
            user=user,
            action=data["action"],
            params=self.params(),
            customer_ids=data["selected"] if selected else None,
            query="" if selected else data["query"],
        )

    def confirmation(self):
        """The same choices again, marked confirmed, for the confirmation page to post."""
        data = {**self.cleaned_data, "confirmed": True}
        data["tags"] = ", ".join(data["tags"])
        return BulkActionForm(initial=data)

    def params(self):
        action, Action = self.cleaned_data["action"], BulkAction.Action
        if action in (Action.ADD_TAGS, Action.REMOVE_TAGS):
            return {"tags": self.cleaned_data["tags"]}
        if action == Action.ASSIGN_OWNER:
            owner = self.cleaned_data["owner"]
            return {"owner": owner.pk if owner else None}
        if action == Action.SET_STATUS:
            return {"status": self.cleaned_data["status"]}
        return {}


class ShareForm(forms.Form):
    """Share a customer with a colleague or a team, to view or to change."""

    subject = forms.CharField(label=_("Share with"))
    level = forms.ChoiceField(
        label=_("Access"),
        choices=[(VIEW, _("View")), (CHANGE, _("View and change"))],
        initial=VIEW,
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        users = active_users().exclude(pk=customer.owner_id)
        self.fields["subject"].widget = forms.Select(
            choices=[
                ("", "---------"),
                (_("Teams"), [(f"team:{t.pk}", str(t)) for t in Team.objects.all()]),
                (_("Colleagues"), [(f"user:{u.pk}", u.display_name) for u in users]),
            ]
        )

    def clean(self):
        data = super().clean()
        kind, _sep, pk = data.get("subject", "").partition(":")
        subject = None
        if kind == "team" and pk.isdigit():
            subject = Team.objects.filter(pk=pk).first()
        elif kind == "user" and pk.isdigit():
            subject = active_users().filter(pk=pk).first()
        if subject is None:
            raise ValidationError(_("Choose a colleague or a team to share with."))
        data["kind"], data["subject"] = kind, subject
        return data
