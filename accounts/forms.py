import math

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import security, two_factor

UNAVAILABLE = _("Signing in is not possible at the moment. Please try again in a few minutes.")


class LoginForm(AuthenticationForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autofocus=True)
        self.fields["password"].widget.attrs.update(autocomplete="current-password")

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()
        return _throttled(self.request, username, super().clean)


class CodeForm(forms.Form):
    """The second step of signing in: a code from the authenticator app or a recovery code."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )

    def __init__(self, request, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = user
        self.device = None

    def clean(self):
        code = self.cleaned_data.get("code")
        if code:
            username = self.user.get_username()
            self.device = _throttled(self.request, username, lambda: self._verify(code))
        return self.cleaned_data

    def _verify(self, code):
        device = two_factor.verify(self.user, code)
        if device is None:
            # The audit trail records failed codes like failed passwords.
            user_login_failed.send(
                sender=__name__,
                credentials={"username": self.user.get_username()},
                request=self.request,
            )
            raise ValidationError({"code": _("That code is not right.")}, code="invalid_code")
        return device

    @property
    def used_recovery_code(self):
        return self.device is not None and self.device.persistent_id.startswith("otp_static.")


class TwoFactorSetupForm(forms.Form):
    code = forms.CharField(
        label=_("Code from the app"),
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def __init__(self, device, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self):
        code = self.cleaned_data["code"]
        if not two_factor.verify_setup_code(self.device, code):
            raise ValidationError(
                _("That code is not right. Check that your phone's clock is right and try again."),
                code="invalid_code",
            )
        return code


class PasswordConfirmForm(forms.Form):
    """Asks for the password again before a change that weakens the account's protection."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise ValidationError(_("That password is not right."), code="password_incorrect")
        return password


def throttle_status(form):
    """The HTTP status to send a sign-in form back with: 429 while locked out, 503 while the
    throttle cannot count, else 200."""
    if form.has_error(NON_FIELD_ERRORS, "locked"):
        return 429
    if form.has_error(NON_FIELD_ERRORS, "unavailable"):
        return 503
    return 200


def _throttled(request, username, attempt):
    """Run `attempt` (which raises ValidationError for a wrong password or code) unless sign-in
    is locked out for the username or the address, and count its failure."""
    try:
        security.check(request, username)
        try:
            return attempt()
        except ValidationError:
            if security.record_failure(request, username):
                raise security.SignInLocked(settings.LOGIN_LOCKOUT_SECONDS) from None
            raise
    except security.SignInLocked as locked:
        raise ValidationError(_lockout_message(locked.seconds), code="locked") from None
    except security.SignInUnavailable:
        raise ValidationError(UNAVAILABLE, code="unavailable") from None


def _lockout_message(seconds):
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed attempts. Signing in is paused for %(count)d minute.",
        "Too many failed attempts. Signing in is paused for %(count)d minutes.",
        minutes,
    ) % {"count": minutes}
