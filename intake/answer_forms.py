"""The Django form a visitor (or staff on their behalf) fills for a built Form.

One form field per FormField, named by its key, labelled in the visitor's language; cleaned
values are split into the submission's readable and encrypted answers by `answers_from`.
"""

import datetime
import decimal

import phonenumbers
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from customers import search
from customers.models import Customer
from customers.phones import normalize_phone
from intake.models import FormField

Type = FormField.Type

YES, NO = "yes", "no"


class PhoneField(forms.CharField):
    """A mobile number typed in any usual way, cleaned to E.164."""

    default_error_messages = {
        "invalid": _("Enter a valid mobile number, e.g. 138 0013 8000 or +86 138 0013 8000."),
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=30, **kwargs)

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "type": "tel", "autocomplete": "tel"}

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return ""
        phone = normalize_phone(value)
        if phone is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return phone


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


def form_field(field):
    """The Django form field for one FormField."""
    common = {
        "label": field.display_label,
        "help_text": field.display_help_text,
        "required": field.required,
    }
    choices = field.display_choices()
    match field.type:
        case Type.TEXT:
            return forms.CharField(max_length=_text_limit(field), **common)
        case Type.LONG_TEXT:
            return forms.CharField(
                max_length=5000, widget=forms.Textarea(attrs={"rows": 4}), **common
            )
        case Type.EMAIL:
            return forms.EmailField(
                max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}), **common
            )
        case Type.PHONE:
            return PhoneField(**common)
        case Type.NUMBER:
            return forms.DecimalField(max_digits=18, decimal_places=6, **common)
        case Type.DATE:
            return forms.DateField(widget=DateInput(), **common)
        case Type.CHOICE:
            return forms.ChoiceField(choices=choices, widget=forms.RadioSelect, **common)
        case Type.MULTI_CHOICE:
            return forms.MultipleChoiceField(
                choices=choices, widget=forms.CheckboxSelectMultiple, **common
            )
        case Type.BOOLEAN:
            return forms.TypedChoiceField(
                choices=[(YES, _("Yes")), (NO, _("No"))],
                coerce=lambda value: value == YES,
                empty_value=None,
                widget=forms.RadioSelect,
                **common,
            )
        case Type.CONSENT:
            # The label is the exact wording the customer agrees to.
            return forms.BooleanField(**common)
        case Type.RATING:
            return _scale(1, 5, common)
        case Type.NPS:
            return _scale(0, 10, common)
    raise ValueError(f"Unknown field type {field.type}")


def _text_limit(field):
    """500 characters, or fewer when the answer is saved to a shorter customer field."""
    if field.target_kind == FormField.CUSTOMER:
        limit = getattr(Customer._meta.get_field(field.target_name), "max_length", None)
        if limit:
            return min(500, limit)
    return 500


def _scale(low, high, common):
    return forms.TypedChoiceField(
        choices=[(str(n), str(n)) for n in range(low, high + 1)],
        coerce=int,
        empty_value=None,
        widget=forms.RadioSelect(attrs={"class": "scale"}),
        **common,
    )


class AnswerForm(forms.Form):
    """The questions of a built form; `fields` are in the form's order."""

    # Whether answering sends the form's verification code (not when staff type answers in).
    sends_codes = True

    def __init__(self, form, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.built_form = form
        self.form_fields = list(form.fields.all())
        for field in self.form_fields:
            self.fields[field.key] = form_field(field)

    def clean(self):
        cleaned = super().clean()
        for field in self.form_fields:
            if field.type == Type.EMAIL and cleaned.get(field.key):
                cleaned[field.key] = search.normalize_email(cleaned[field.key])
            if (
                self.sends_codes
                and self.built_form.verify == "phone"
                and field.target == "customer:phone"
                and cleaned.get(field.key)
                and not can_text(cleaned[field.key])
            ):
                # Codes sent to any number in the world invite SMS pumping: bots entering
                # premium-rate numbers to earn from the messages the company pays for.
                self.add_error(
                    field.key,
                    _("Codes can only be sent to mobile numbers of %(regions)s.")
                    % {"regions": ", ".join(settings.SMS_ALLOWED_REGIONS)},
                )
        return cleaned

    def answers(self):
        """The cleaned answers as (readable, private) JSON dicts; see answers_from."""
        return answers_from(self.form_fields, self.cleaned_data)


def can_text(phone):
    """Whether verification codes may be sent to this E.164 number (SMS_ALLOWED_REGIONS)."""
    if not settings.SMS_ALLOWED_REGIONS:
        return True
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return False
    return region in settings.SMS_ALLOWED_REGIONS


def answers_from(form_fields, cleaned):
    """Split cleaned values into JSON-ready readable and private (encrypted) answers.

    Unanswered questions are left out; a consent left unticked is recorded as False, since
    declining is an answer too.
    """
    readable, private = {}, {}
    for field in form_fields:
        value = _json(cleaned.get(field.key))
        if field.type == Type.CONSENT:
            value = bool(value)
        elif value in (None, "", []):
            continue
        (private if field.is_private else readable)[field.key] = value
    return readable, private


def _json(value):
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
