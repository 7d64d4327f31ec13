"""Two-factor authentication: an authenticator app (TOTP) plus one-time recovery codes.

A user has two-factor authentication when they have a confirmed TOTP device; their recovery
codes are the tokens of one static device. Users with a role in roles.TWO_FACTOR_REQUIRED must
set it up before they can use CIMS; everyone else may.
"""

import time
from base64 import b32encode

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils.safestring import mark_safe
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles

RECOVERY_CODE_COUNT = 10
# How long the code step waits after a correct password before the password must be given again.
PENDING_SIGN_IN_SECONDS = 5 * 60
PENDING_KEY = "accounts.pending_sign_in"


def is_required(user):
    # Superusers can do everything an administrator can, and more. The same rule, read in one
    # query with the device, is status() below.
    return user.is_superuser or user.groups.filter(name__in=roles.TWO_FACTOR_REQUIRED).exists()


def is_enabled(user):
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def status(user):
    """(has two-factor authentication, it is required), in one query."""
    enabled, by_role, superuser = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values_list(
            Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            Exists(Group.objects.filter(user=OuterRef("pk"), name__in=roles.TWO_FACTOR_REQUIRED)),
            "is_superuser",
        )
        .get()
    )
    return enabled, by_role or superuser


def unconfirmed_device(user):
    """The device being set up, kept until confirmed so that reloading the page does not
    change the secret the user may already have scanned."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def secret(device):
    """The device's key as authenticator apps take it when typed: base32, in groups of four."""
    text = b32encode(device.bin_key).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def qr_code_svg(device):
    """The device's otpauth:// address as an inline SVG QR code (no scripts, no styles, so the
    Content Security Policy needs no exception)."""
    image = qrcode.make(
        device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=14
    )
    svg = image.to_string(encoding="unicode")
    # The SVG holds only the generated path and the escaped address; nothing a user typed.
    return mark_safe(svg.replace("<svg ", '<svg class="qr-code" role="img" ', 1))


@transaction.atomic
def enable(device):
    """Confirm a device whose code the user has just given; return fresh recovery codes."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
    return new_recovery_codes(device.user)


@transaction.atomic
def new_recovery_codes(user):
    """Replace the user's recovery codes with RECOVERY_CODE_COUNT new ones and return them."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, defaults={"name": "recovery", "confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user):
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


@transaction.atomic
def disable(user):
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()


def verify(user, code):
    """The device that accepts `code` (a current TOTP code or an unused recovery code, which is
    then used up), or None."""
    code = "".join(code.split()).replace("-", "").lower()
    # Authenticator codes are six digits; recovery codes are eight letters and digits.
    if len(code) == 6 and code.isdigit():
        devices = TOTPDevice.objects.devices_for_user(user, confirmed=True)
    else:
        devices = StaticDevice.objects.devices_for_user(user, confirmed=True)
    for device in devices:
        # verify_token locks the device row, so one code cannot be used twice at once.
        if verified := django_otp.verify_token(user, device.persistent_id, code):
            return verified
    return None


def verify_setup_code(device, code):
    """Whether `code` is the current code of a device being set up."""
    code = "".join(code.split())
    return django_otp.verify_token(device.user, device.persistent_id, code) is not None


# The sign-in waiting for its code: the password was right, the session is not signed in yet.


def begin_pending_sign_in(request, user, next_url):
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": user.backend,
        "next": next_url,
        "since": time.time(),
    }


def pending_sign_in(request):
    """(user, backend, next address) of the sign-in waiting for a code, or None if there is
    none, it waited too long or the account was deactivated meanwhile."""
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["since"] > PENDING_SIGN_IN_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        return None
    return user, pending["backend"], pending["next"]


def end_pending_sign_in(request):
    request.session.pop(PENDING_KEY, None)
