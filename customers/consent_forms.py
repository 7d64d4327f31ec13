from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from customers.models import ConsentPurpose, Source


class ConsentChangeForm(forms.Form):
    """Staff granting or withdrawing one purpose from the customer page."""

    purpose = forms.ChoiceField(label=_("purpose"), choices=ConsentPurpose.choices)
    granted = forms.TypedChoiceField(
        label=_("decision"),
        choices=[("true", _("Grant")), ("false", _("Withdraw"))],
        coerce=lambda value: value == "true",
    )
    source = forms.ChoiceField(label=_("how the customer told us"), choices=Source.choices)
    wording = forms.CharField(
        label=_("wording the customer agreed to"), required=False, max_length=2000
    )
    wording_version = forms.CharField(label=_("wording version"), required=False, max_length=50)

    def clean(self):
        return require_wording_for_grants(super().clean())


def require_wording_for_grants(cleaned):
    """A grant records what the customer was asked: its wording is required (forms' clean)."""
    if cleaned.get("granted") and not (cleaned.get("wording") or "").strip():
        raise ValidationError(
            _("Give the wording the customer agreed to: a consent records what was asked.")
        )
    return cleaned


class PublicWithdrawalForm(forms.Form):
    """A customer withdrawing one purpose, or every one ("all"), from the emailed link."""

    purpose = forms.ChoiceField(choices=[("all", "all"), *ConsentPurpose.choices])
