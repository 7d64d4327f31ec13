"""Erasing a customer, live or archived, from their page: a confirmation page, then
customers.erasure."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.permissions import (
    DELETE,
    VIEW,
    can_erase,
    can_erase_archived,
    get_archived_customer_for,
    get_customer_for,
)
from customers import erasure
from customers.erasure_models import ErasureReason


class ErasureForm(forms.Form):
    # Retention rules erase by themselves; a person chooses among the other reasons.
    reason = forms.ChoiceField(
        label=gettext_lazy("Reason"),
        choices=[(v, label) for v, label in ErasureReason.choices if v != ErasureReason.RETENTION],
    )
    confirm_name = forms.CharField(
        label=gettext_lazy("Type the customer's name to confirm"), max_length=200, strip=True
    )

    def __init__(self, customer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_confirm_name(self):
        typed = " ".join(self.cleaned_data["confirm_name"].split())
        if typed != " ".join(self.customer.display_name.split()):
            raise forms.ValidationError(_("The name you typed does not match the customer's."))
        return typed


@require_http_methods(["GET", "POST"])
def customer_erase(request, pk):
    customer = get_customer_for(request.user, pk, DELETE)
    if not can_erase(request.user, customer):
        raise PermissionDenied
    return _confirm_and_erase(request, customer)


@require_http_methods(["GET", "POST"])
def archived_erase(request, pk):
    archived = get_archived_customer_for(request.user, pk, VIEW)
    if not can_erase_archived(request.user, archived):
        raise PermissionDenied
    return _confirm_and_erase(request, archived)


def _confirm_and_erase(request, customer):
    """The confirmation page and the erasure, for a live or an archived customer (who stays in
    the archive, as a tombstone)."""
    if customer.erasure is not None:
        messages.info(request, _("This customer's personal data has already been erased."))
        return redirect(customer)
    form = ErasureForm(customer, request.POST or None)
    if request.method == "POST" and form.is_valid():
        erasure.erase_customer(customer.pk, reason=form.cleaned_data["reason"], user=request.user)
        messages.success(
            request,
            _("The customer's personal data was erased. Their orders still count in figures."),
        )
        return redirect(customer)
    return render(
        request,
        "customers/customer_confirm_erase.html",
        {"customer": customer, "form": form},
        status=400 if form.is_bound else 200,
    )
