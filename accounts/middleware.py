from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override

from accounts import sessions, two_factor


class UserLanguageMiddleware:
    """Serve a signed-in user in the language they chose, on any device they sign in from."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        return self.get_response(request)


class SessionTimeoutMiddleware:
    """End a signed-in session after SESSION_IDLE_TIMEOUT idle seconds or SESSION_MAX_AGE
    seconds in all (accounts.sessions); the next page then asks for the password again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            reason = sessions.expiry(request)
            if reason is None:
                sessions.touch(request)
            else:
                logout(request)
                messages.info(request, _timeout_message(reason))
        return self.get_response(request)


def _timeout_message(reason):
    if reason == "idle":
        minutes = max(1, settings.SESSION_COOKIE_AGE // 60)
        return ngettext(
            "You were signed out after %(count)d minute without activity.",
            "You were signed out after %(count)d minutes without activity.",
            minutes,
        ) % {"count": minutes}
    hours = max(1, settings.SESSION_MAX_AGE // 3600)
    return ngettext(
        "You were signed out because sessions last at most %(count)d hour.",
        "You were signed out because sessions last at most %(count)d hours.",
        hours,
    ) % {"count": hours}


# While a user whose role requires two-factor authentication has not set it up, only these
# pages open; everything else leads to the set-up page.
ENROLMENT_VIEWS = {"accounts:two_factor_setup", "accounts:logout", "accounts:set_language"}


class TwoFactorMiddleware:
    """Keep sessions that have not passed the second factor to what they may do.

    Install after django_otp's OTPMiddleware and LoginRequiredMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_name = request.resolver_match.view_name
        user = request.user
        if view_name == "admin:login" and (request.method == "POST" or not user.is_authenticated):
            # The admin's own sign-in form would skip throttling and the code step. Signed-in
            # users without admin access still see its "not authorized" page.
            return redirect_to_login(request.GET.get("next", "/admin/"))
        if not user.is_authenticated or user.is_verified():
            return None
        public = not getattr(view_func, "login_required", True)
        has_two_factor, required = two_factor.status(user)
        if has_two_factor:
            # The session proved only the password: it began before two-factor authentication
            # was set up in another session, or without the sign-in page.
            logout(request)
            return None if public else redirect_to_login(request.get_full_path())
        if required and not public and view_name not in ENROLMENT_VIEWS:
            messages.info(
                request, _("Your role requires two-factor authentication. Please set it up now.")
            )
            return redirect("accounts:two_factor_setup")
        return None


class NoStoreMiddleware:
    """Keep pages shown to signed-in users (personal data) out of browser and proxy caches,
    unless the view chose its own Cache-Control."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response


def allow_framing(*sources):
    """Let the pages in `sources` (CSP source expressions, e.g. "https://shop.example.com" or
    "https:") show this view in a frame. Every other page refuses to be framed."""
    if not sources:
        raise TypeError("allow_framing() needs at least one source.")

    def decorator(view_func):
        policy = {**settings.SECURE_CSP, "frame-ancestors": list(sources)}
        return xframe_options_exempt(csp_override(policy)(view_func))

    return decorator
