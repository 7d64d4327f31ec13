"""The pages where a customer confirms the email address or mobile number a form asked for.

Public and cookie-free like the form itself (an embedded form verifies inside the same frame):
a POST must come from this site (intake.public_views checks Origin or Referer), and the
submission's long random id in the address is what ties the page to the customer.
"""

import urllib.parse

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from intake import verification
from intake.models import Submission
from intake.public_views import _from_this_site, chosen_language, with_form_policy
from intake.verification import Outcome


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Verification code"),
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "pattern": "[0-9]*",
                "maxlength": "6",
                "autofocus": True,
                "class": "code-input",
            }
        ),
        error_messages={"required": _("Enter the code we sent you.")},
    )

    def clean_code(self):
        code = verification.normalize_code(self.cleaned_data["code"])
        if not (code.isascii() and code.isdigit() and len(code) == verification.CODE_DIGITS):
            raise forms.ValidationError(_("The code has 6 digits."), code="format")
        return code


def _submission(slug, pk):
    return get_object_or_404(Submission.objects.select_related("form"), pk=pk, form__slug=slug)


def _language(request, submission):
    return chosen_language(request) or submission.language or settings.LANGUAGE_CODE


def _with_language(url, request):
    language = chosen_language(request)
    return f"{url}?{urllib.parse.urlencode({'lang': language})}" if language else url


def _finished(request, form):
    if form.redirect_url:
        return HttpResponseRedirect(form.redirect_url)
    return HttpResponseRedirect(
        _with_language(reverse("intake:form_thanks", args=[form.slug]), request)
    )


def _page(request, submission, code_form=None, *, notice=""):
    form = submission.form
    context = {"form": form, "submission": submission, "kept_params": []}
    if submission.state != Submission.State.PENDING:
        template = "intake/verify/done.html"
    else:
        template = "intake/verify/verify.html"
        context.update(
            status=verification.status(submission),
            code_form=code_form or CodeForm(),
            notice=notice,
            action=_with_language(
                reverse("intake:verify", args=[form.slug, submission.pk]), request
            ),
            resend_action=_with_language(
                reverse("intake:verify_resend", args=[form.slug, submission.pk]), request
            ),
            start_again=_with_language(form.get_absolute_url(), request)
            if form.is_published
            else "",
        )
    # Mistakes are answered 200 with the message beside the field, as the public form does.
    return with_form_policy(form, render(request, template, context))


@login_not_required
@csrf_exempt  # checked without cookies: see the module's docstring
@require_http_methods(["GET", "POST"])
@cache_control(private=True, no_store=True)
def verify(request, slug, pk):
    submission = _submission(slug, pk)
    with translation.override(_language(request, submission)):
        if request.method == "GET" or submission.state != Submission.State.PENDING:
            return _page(request, submission)
        if not _from_this_site(request):
            raise PermissionDenied
        code_form = CodeForm(request.POST)
        if not code_form.is_valid():
            return _page(request, submission, code_form)
        outcome = verification.check_code(submission, code_form.cleaned_data["code"])
        if outcome in (Outcome.VERIFIED, Outcome.NOT_PENDING):
            submission.refresh_from_db()
            return _finished(request, submission.form)
        code_form.add_error("code", _wrong_code_message(outcome, submission))
        return _page(request, submission, code_form)


def _wrong_code_message(outcome, submission):
    if outcome == Outcome.EXPIRED:
        return _("This code has expired. Ask for a new one below.")
    if outcome == Outcome.LOCKED:
        return _("That was the last attempt. For your security, please fill in the form again.")
    left = verification.status(submission).attempts_left
    return ngettext(
        "That code is not right. You have %(count)d more attempt.",
        "That code is not right. You have %(count)d more attempts.",
        left,
    ) % {"count": left}


@login_not_required
@csrf_exempt  # checked without cookies: see the module's docstring
@require_POST
@cache_control(private=True, no_store=True)
def verify_resend(request, slug, pk):
    submission = _submission(slug, pk)
    with translation.override(_language(request, submission)):
        if submission.state != Submission.State.PENDING:
            return _page(request, submission)
        if not _from_this_site(request):
            raise PermissionDenied
        sent, status = verification.resend(submission)
        if sent:
            notice = _("We sent you a new code. The earlier one no longer works.")
        elif status.resend_in > 0 and status.can_resend:
            notice = _("Please wait a moment before asking for another code.")
        elif not status.can_resend:
            notice = _("No more codes can be sent for this submission.")
        else:
            notice = ""
        return _page(request, submission, notice=notice)


@login_not_required
@require_GET
@cache_control(private=True, no_store=True)
def verify_link(request, token):
    """The link in the email: verifies in one click."""
    outcome, submission = verification.check_token(token)
    if submission is None:
        with translation.override(chosen_language(request) or translation.get_language()):
            response = render(request, "intake/verify/invalid_link.html", status=404)
        return response
    with translation.override(_language(request, submission)):
        if outcome == Outcome.VERIFIED:
            return _finished(request, submission.form)
        if outcome == Outcome.EXPIRED:
            return _page(
                request,
                submission,
                notice=_("This link has expired. Ask for a new code below."),
            )
        return _page(request, submission)
