"""Public forms and surveys at /f/<slug>/, filled by anyone without signing in.

These pages work without cookies, because an embeddable form shown in a frame on another site
cannot count on getting any back: browsers withhold SameSite=Lax cookies (Django's CSRF and
session cookies) from a cross-site frame's POST, and many block third-party cookies outright.
Relaxing the CSRF cookie to SameSite=None for the whole site would weaken every staff page.
So Django's cookie-based CSRF check is replaced here by checks that need no cookie:

- the Origin header of a POST must be this site's own (or a CSRF_TRUSTED_ORIGINS one), which is
  what stops another site from making a visitor's browser post answers; on HTTPS a POST without
  Origin needs a Referer of this site, as Django's own check does;
- the page carries a token signed with SECRET_KEY for this form and time, so answers can only
  be sent from a page served by us within INTAKE_FORM_TOKEN_MAX_AGE; a stale page is shown
  again with the answers kept;
- a honeypot input, hidden from people, catches bots that fill every field: they are shown
  the normal thank-you page and nothing is stored;
- submissions per client address are limited per hour (intake.ratelimit), and bodies larger
  than INTAKE_MAX_BODY_BYTES are refused before they are read.

The visitor's language comes from Accept-Language (Chinese by default) or from `?lang=`,
which the language switcher sets, as a cookie could not be relied on in a frame either.
"""

import contextlib
import logging
import urllib.parse

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from accounts.audit import client_ip
from customers.models import Channel
from intake import ratelimit, services
from intake.answer_forms import AnswerForm
from intake.models import Form, Submission

logger = logging.getLogger(__name__)

# Form field keys start with a letter (intake.builder_forms), so these names never clash.
TOKEN_FIELD = "_token"
HONEYPOT_FIELD = "_website"
_signer = signing.TimestampSigner(salt="intake.public_form")


def form_token(form):
    return _signer.sign(str(form.pk))


def token_is_valid(token, form):
    try:
        value = _signer.unsign(token or "", max_age=settings.INTAKE_FORM_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return False
    return value == str(form.pk)


def chosen_channel(request):
    """Where the visitor came from (`?channel=store` on a poster's QR code); website otherwise."""
    channel = request.GET.get("channel", "")
    return channel if channel in Channel.values else Channel.WEBSITE


def chosen_language(request):
    language = request.GET.get("lang", "")
    return language if language in dict(settings.LANGUAGES) else None


@contextlib.contextmanager
def visitor_language(request):
    language = chosen_language(request)
    if language is None:
        yield
    else:
        with translation.override(language):
            yield


def with_form_policy(form, response):
    """Apply the form's framing and form-action rules to a response of its public pages.

    Only embeddable forms may be shown in other sites' frames; every other page refuses. A form
    that sends visitors on to another site after submitting must allow that site as a
    form-action, or browsers stop the redirect.
    """
    policy = dict(settings.SECURE_CSP)
    if form.redirect_url:
        target = urllib.parse.urlsplit(form.redirect_url)
        policy["form-action"] = [
            *policy.get("form-action", []),
            f"{target.scheme}://{target.netloc}",
        ]
    if form.embeddable:
        policy["frame-ancestors"] = list(settings.INTAKE_FRAME_ANCESTORS)
        response = xframe_options_exempt(lambda request: response)(None)
    if policy != settings.SECURE_CSP:
        response = csp_override(policy)(lambda request: response)(None)
    return response


def _published(slug):
    return get_object_or_404(Form.objects.filter(published_at__isnull=False), slug=slug)


def _kept_params(request):
    """The query parameters the language switcher passes on."""
    return [(name, value) for name, value in request.GET.items() if name in ("channel",)]


def _with_language(url, request):
    language = chosen_language(request)
    return f"{url}?{urllib.parse.urlencode({'lang': language})}" if language else url


def render_form_page(request, form, answer_form, *, preview=False, stale=False, status=200):
    context = {
        "form": form,
        "answer_form": answer_form,
        "token": form_token(form),
        "token_field": TOKEN_FIELD,
        "honeypot_field": HONEYPOT_FIELD,
        "preview": preview,
        "stale": stale,
        "kept_params": _kept_params(request),
    }
    return render(request, "intake/public/form.html", context, status=status)


@login_not_required
@csrf_exempt  # see the module's docstring: checked without cookies, in _receive
@require_http_methods(["GET", "POST"])
@cache_control(private=True, no_cache=True)
def public_form(request, slug):
    form = _published(slug)
    with visitor_language(request):
        if request.method == "POST":
            response = _receive(request, form)
        else:
            response = render_form_page(request, form, AnswerForm(form))
    return with_form_policy(form, response)


def _receive(request, form):
    if _body_size(request) > settings.INTAKE_MAX_BODY_BYTES:
        context = {"form": form, "limit_kb": settings.INTAKE_MAX_BODY_BYTES // 1024}
        return render(request, "intake/public/too_large.html", context, status=413)
    if not _from_this_site(request):
        raise PermissionDenied
    address = client_ip(request)
    wait = ratelimit.retry_after(address)
    if wait is not None:
        return _too_many(request, form, wait)
    if request.POST.get(HONEYPOT_FIELD):
        # Answered exactly as a person would be, so the bot learns nothing.
        logger.info("Honeypot filled on form %s from %s: nothing stored", form.slug, address)
        ratelimit.count(address)
        return _finished(request, form)
    answer_form = AnswerForm(form, data=request.POST)
    if not token_is_valid(request.POST.get(TOKEN_FIELD), form):
        return render_form_page(request, form, answer_form, stale=True, status=400)
    if not answer_form.is_valid():
        return render_form_page(request, form, answer_form)
    # Counted before it is stored: the check above let through every request that arrived
    # before the earlier ones were counted.
    wait = ratelimit.count(address)
    if wait is not None:
        return _too_many(request, form, wait)
    with transaction.atomic():
        submission = services.receive_submission(
            answer_form,
            channel=chosen_channel(request),
            ip_address=address,
            language=translation.get_language() or "",
        )
    if submission.state == Submission.State.PENDING:
        url = reverse("intake:verify", args=[form.slug, submission.pk])
        return HttpResponseRedirect(_with_language(url, request))
    return _finished(request, form)


def _too_many(request, form, wait):
    context = {"form": form, "minutes": max(1, (wait + 59) // 60)}
    response = render(request, "intake/public/too_many.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


def _finished(request, form):
    if form.redirect_url:
        return HttpResponseRedirect(form.redirect_url)
    url = reverse("intake:form_thanks", args=[form.slug])
    return HttpResponseRedirect(_with_language(url, request))


def _body_size(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _from_this_site(request):
    """Whether a POST comes from one of our own pages (Origin, or on HTTPS the Referer)."""
    own = f"{request.scheme}://{request.get_host()}"
    trusted = {own, *settings.CSRF_TRUSTED_ORIGINS}
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None:
        return origin in trusted
    if not request.is_secure():
        return True
    referer = urllib.parse.urlsplit(request.META.get("HTTP_REFERER", ""))
    return f"{referer.scheme}://{referer.netloc}" in trusted


@login_not_required
@require_GET
def form_thanks(request, slug):
    form = _published(slug)
    with visitor_language(request):
        response = render(request, "intake/public/thanks.html", {"form": form})
    return with_form_policy(form, response)
