from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from accounts import audit, security, sessions, two_factor
from accounts.forms import (
    CodeForm,
    LoginForm,
    PasswordConfirmForm,
    TwoFactorSetupForm,
    throttle_status,
)

# Recovery codes waiting to be shown once, on the page after they were made.
NEW_CODES_KEY = "accounts.new_recovery_codes"


@login_not_required
@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login(request):
    """The password step; users with two-factor authentication go on to the code step."""
    next_url = _next_url(request)
    if request.user.is_authenticated:
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        user = form.get_user()
        if two_factor.is_enabled(user):
            two_factor.begin_pending_sign_in(request, user, next_url)
            return redirect("accounts:login_code")
        _sign_in(request, user)
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    context = {"form": form, "next": next_url}
    return render(request, "accounts/login.html", context, status=throttle_status(form))


@login_not_required
@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request):
    """The code step: the password was right, the session is signed in once the code is."""
    pending = two_factor.pending_sign_in(request)
    if pending is None:
        messages.info(request, _("Please sign in again."))
        return redirect("accounts:login")
    user, backend, next_url = pending
    form = CodeForm(request, user, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        two_factor.end_pending_sign_in(request)
        _sign_in(request, user, backend=backend, device=form.device)
        if form.used_recovery_code:
            left = two_factor.recovery_codes_left(user)
            messages.warning(
                request,
                ngettext(
                    "You used a recovery code; %(count)d is left.",
                    "You used a recovery code; %(count)d are left.",
                    left,
                )
                % {"count": left},
            )
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/login_code.html", {"form": form}, status=throttle_status(form))


def _sign_in(request, user, *, backend=None, device=None):
    auth_login(request, user, backend=backend)  # Rotates the session key.
    if device is not None:
        otp_login(request, device)
    sessions.start(request)
    security.record_success(user.get_username())


def _next_url(request):
    """The `next` address if it is on this site, else ""."""
    url = request.POST.get("next", request.GET.get("next", ""))
    safe = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if safe else ""


@require_GET
def security_settings(request):
    user = request.user
    context = {
        "two_factor_enabled": two_factor.is_enabled(user),
        "two_factor_required": two_factor.is_required(user),
        "recovery_codes_left": two_factor.recovery_codes_left(user),
    }
    return render(request, "accounts/security.html", context)


@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def password_change(request):
    form = PasswordChangeForm(request.user, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        with transaction.atomic():
            user = form.save()
            audit.record(audit.Action.PASSWORD_CHANGE, target=user, request=request)
        # The new password invalidates every session's hash; this one is kept signed in and
        # the others are deleted.
        update_session_auth_hash(request, user)
        sessions.end_sessions(user, keep=request.session.session_key)
        messages.success(request, _("Your password was changed and your other sessions ended."))
        return redirect("accounts:security")
    return render(request, "accounts/password_change.html", {"form": form})


@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def two_factor_setup(request):
    user = request.user
    if two_factor.is_enabled(user):
        messages.info(request, _("Two-factor authentication is already on."))
        return redirect("accounts:security")
    device = two_factor.unconfirmed_device(user)
    form = TwoFactorSetupForm(device, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        with transaction.atomic():
            codes = two_factor.enable(device)
            audit.record(
                audit.Action.TWO_FACTOR, target=user, data={"change": "enabled"}, request=request
            )
        otp_login(request, device)
        # Sessions elsewhere proved only the password.
        sessions.end_sessions(user, keep=request.session.session_key)
        request.session[NEW_CODES_KEY] = codes
        messages.success(request, _("Two-factor authentication is on."))
        return redirect("accounts:recovery_codes")
    context = {
        "form": form,
        "qr_code": two_factor.qr_code_svg(device),
        "secret": two_factor.secret(device),
        "required": two_factor.is_required(user),
    }
    return render(request, "accounts/two_factor_setup.html", context)


@require_http_methods(["GET", "POST"])
def recovery_codes(request):
    """POST makes new recovery codes; GET shows them, once."""
    if not request.user.is_verified():
        return redirect("accounts:security")
    if request.method == "POST":
        with transaction.atomic():
            codes = two_factor.new_recovery_codes(request.user)
            audit.record(
                audit.Action.TWO_FACTOR,
                target=request.user,
                data={"change": "recovery_codes"},
                request=request,
            )
        request.session[NEW_CODES_KEY] = codes
        messages.success(request, _("New recovery codes were made; the old ones no longer work."))
        return redirect("accounts:recovery_codes")
    codes = request.session.pop(NEW_CODES_KEY, None)
    if codes is None:
        return redirect("accounts:security")
    return render(request, "accounts/recovery_codes.html", {"codes": codes})


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def two_factor_disable(request):
    user = request.user
    if two_factor.is_required(user):
        raise PermissionDenied
    if not two_factor.is_enabled(user):
        return redirect("accounts:security")
    form = PasswordConfirmForm(user, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        with transaction.atomic():
            two_factor.disable(user)
            audit.record(
                audit.Action.TWO_FACTOR, target=user, data={"change": "disabled"}, request=request
            )
        messages.success(request, _("Two-factor authentication is off."))
        return redirect("accounts:security")
    return render(request, "accounts/two_factor_disable.html", {"form": form})


@login_not_required
@require_POST
def set_language(request):
    """Switch the interface language; remembered on the account and in a cookie."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if language in dict(settings.LANGUAGES) and check_for_language(language):
        if request.user.is_authenticated:
            request.user.language = language
            request.user.save(update_fields=["language"])
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=365 * 24 * 60 * 60,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response
