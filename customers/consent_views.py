"""Consents: staff granting and withdrawing them on the customer page, and the public page and
one-click endpoint that a customer reaches from the link in every email CIMS sends them."""

import urllib.parse

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.permissions import get_customer_for
from customers import consents
from customers.consent_forms import ConsentChangeForm, PublicWithdrawalForm
from customers.masking import mask_email
from intake.public_views import chosen_language, visitor_language


@require_POST
def consent_change(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    back = customer.get_absolute_url() + "#consents"
    form = ConsentChangeForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    data = form.cleaned_data
    consent = consents.record_consent(
        customer=customer,
        purpose=data["purpose"],
        granted=data["granted"],
        source=data["source"],
        recorded_by=request.user,
        wording=data["wording"].strip(),
        wording_version=data["wording_version"].strip(),
    )
    if consent.granted:
        message = _("Consent to %(purpose)s recorded.")
    else:
        message = _("Consent to %(purpose)s withdrawn.")
    messages.success(request, message % {"purpose": consent.get_purpose_display()})
    return redirect(back)


# The public page -----------------------------------------------------------------------------


def _with_language(url, request, **params):
    language = chosen_language(request)
    if language:
        params["lang"] = language
    return f"{url}?{urllib.parse.urlencode(params)}" if params else url


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def manage(request, token):
    """What the customer consents to, each purpose withdrawn with one click. Shows nothing
    about them but their masked email address."""
    customer = consents.customer_for_token(token)
    with visitor_language(request):
        if customer is None:
            return render(request, "customers/consents/invalid_link.html", status=404)
        if request.method == "POST":
            form = PublicWithdrawalForm(request.POST)
            if form.is_valid():
                purpose = form.cleaned_data["purpose"]
                consents.withdraw_all(
                    customer,
                    source=consents.PUBLIC_SOURCE,
                    via="link",
                    purposes=None if purpose == "all" else [purpose],
                )
                return HttpResponseRedirect(_with_language(request.path, request, done=1))
        states = consents.overview(customer)
        context = {
            "states": states,
            "any_granted": any(state.granted for state in states),
            "email": mask_email(customer.email),
            "done": request.GET.get("done") == "1",
        }
        return render(request, "customers/consents/manage.html", context)


@login_not_required
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def one_click(request, token):
    """RFC 8058: a mail client's POST withdraws consent to marketing email, no questions asked.

    It comes without cookies, so there is no CSRF token to check: the signed token in the URL
    is the authority, and it can only withdraw. A GET (someone opening the URL) shows the page.
    """
    if request.method == "GET":
        return HttpResponseRedirect(reverse("consents:manage", args=[token]))
    customer = consents.customer_for_token(token)
    if customer is None:
        return HttpResponse(status=404)
    consents.withdraw_all(
        customer,
        source=consents.PUBLIC_SOURCE,
        via="list_unsubscribe",
        purposes=[consents.EMAIL_PURPOSE],
    )
    with visitor_language(request):
        return HttpResponse(
            _("You will no longer receive marketing email from us."),
            content_type="text/plain; charset=utf-8",
        )
