"""Codes that prove a pending submission's email address or mobile number belongs to its sender.

A six-digit code goes by email or SMS; an email also carries a link with a separate random token
that verifies in one click. Neither is stored: only keyed hashes (HMAC-SHA256 under
INTAKE_VERIFY_HASH_KEY), so a copy of the database does not let anyone verify, nor try the
million codes offline. Each code expires after INTAKE_VERIFY_CODE_MINUTES; a submission allows
INTAKE_VERIFY_MAX_ATTEMPTS wrong codes in all (a new code does not reset them, or resending
would be a way to keep guessing), and a new code after INTAKE_VERIFY_RESEND_SECONDS.

Messages are sent once the submission's transaction has committed, outside any transaction (a
slow provider must not hold row locks). When the provider fails, the customer is told on the
page and a worker tries again with a fresh code, backing off between attempts.
"""

import datetime
import enum
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from customers import consents
from customers.masking import mask_email, mask_phone
from intake.models import Form, Submission, VerificationCode
from intake.sms import send_sms

logger = logging.getLogger(__name__)

CODE_DIGITS = 6
# Where the address to verify is answered, by the form's kind of verification.
TARGETS = {Form.Verify.EMAIL: "customer:email", Form.Verify.PHONE: "customer:phone"}
CHANNELS = {
    Form.Verify.EMAIL: VerificationCode.Channel.EMAIL,
    Form.Verify.PHONE: VerificationCode.Channel.SMS,
}


class Outcome(enum.Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"
    NOT_PENDING = "not_pending"


# Keyed hashes ------------------------------------------------------------------------------


def _mac(message):
    key = (settings.INTAKE_VERIFY_HASH_KEY or settings.SECRET_KEY).encode()
    # The prefix keeps these hashes apart from anything else made with the same key.
    return hmac.new(key, f"cims-verification:{message}".encode(), hashlib.sha256).hexdigest()


def hash_code(submission_id, code):
    # Bound to the submission, so equal codes of two submissions have unrelated hashes.
    return _mac(f"code:{submission_id}:{code}")


def hash_token(token):
    return _mac(f"token:{token}")


def normalize_code(raw):
    """What a customer typed, as ASCII digits: full-width digits and spaces are common."""
    text = unicodedata.normalize("NFKC", raw or "")
    return "".join(ch for ch in text if not ch.isspace() and ch != "-")


# Where the code goes -----------------------------------------------------------------------


def destination(submission):
    """The email address or E.164 number the form asked to verify, or ""."""
    target = TARGETS.get(submission.form.verify)
    for field in submission.form.fields.all():
        if target and field.target == target:
            return submission.answer(field.key) or ""
    return ""


def masked_destination(submission):
    address = destination(submission)
    if submission.form.verify == Form.Verify.EMAIL:
        return mask_email(address)
    return mask_phone(address)


# Sending -----------------------------------------------------------------------------------


def send_code(submission):
    """Prepare verification of a new pending submission and send its code after the commit."""
    VerificationCode.objects.update_or_create(
        submission=submission,
        defaults={
            "channel": CHANNELS[submission.form.verify],
            "code_hash": "",
            "token_hash": "",
            "expires_at": timezone.now(),
        },
    )
    submission_id = submission.pk
    transaction.on_commit(lambda: deliver(submission_id))


def deliver(submission_id, *, automatic=False):
    """Send a fresh code for a pending submission: True when the provider took the message,
    False when it failed, None when there was nothing to send.

    A failure is recorded for the page to show and, unless this is already a worker's retry
    (which retries itself), a worker is asked to try again. `automatic` sends nothing when a
    code went out since the failure it retries.
    """
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    token = ""
    with transaction.atomic():
        verification = (
            VerificationCode.objects.select_for_update()
            .select_related("submission__form")
            .filter(submission_id=submission_id, submission__state=Submission.State.PENDING)
            .first()
        )
        if verification is None:
            return None
        if automatic and not verification.last_error and verification.sent_at:
            return None
        submission = verification.submission
        if verification.channel == VerificationCode.Channel.EMAIL:
            token = secrets.token_urlsafe(32)
        now = timezone.now()
        verification.code_hash = hash_code(submission_id, code)
        verification.token_hash = hash_token(token) if token else ""
        verification.expires_at = now + datetime.timedelta(
            minutes=settings.INTAKE_VERIFY_CODE_MINUTES
        )
        verification.sent_at = now
        verification.save(update_fields=["code_hash", "token_hash", "expires_at", "sent_at"])
    address = destination(submission)
    try:
        if not address:
            raise ValueError("The submission has no address to verify.")
        _send(verification, submission, address, code, token)
    except Exception as error:
        # Any failure of the provider (refused, unreachable, misconfigured) is the same to the
        # customer: the code did not go out. It is logged without the code.
        failure = _failure_text(error, address)
        logger.warning("Verification code for %s not sent: %s", submission_id, failure)
        retry = bool(address) and not automatic and settings.INTAKE_VERIFY_RETRIES > 0
        VerificationCode.objects.filter(pk=submission_id).update(
            last_error=failure[:500],
            retry_at=(
                timezone.now() + datetime.timedelta(seconds=retry_delay(0)) if retry else None
            ),
        )
        if retry:
            _queue_retry(submission_id)
        return False
    VerificationCode.objects.filter(pk=submission_id).update(
        last_error="", retry_at=None, send_count=verification.send_count + 1
    )
    return True


def _failure_text(error, address):
    """An error as the log and the stored record show it: a provider refusing a recipient
    names it, and neither is a place for customers' addresses (the record is not encrypted)."""
    text = str(error) or type(error).__name__
    if address:
        text = re.sub(re.escape(address), "<recipient>", text, flags=re.IGNORECASE)
    return text


def retry_delay(retries):
    """Seconds before the automatic retry after `retries` earlier ones: doubling each time."""
    return settings.INTAKE_VERIFY_RETRY_SECONDS * 2**retries


def _queue_retry(submission_id):
    from intake.tasks import send_verification_code

    try:
        send_verification_code.apply_async(args=[str(submission_id)], countdown=retry_delay(0))
    except Exception:
        # With the broker down too, the customer can still ask for a new code on the page.
        logger.exception("Could not queue a retry of the verification code for %s", submission_id)
        VerificationCode.objects.filter(pk=submission_id).update(retry_at=None)


def _send(verification, submission, address, code, token):
    minutes = settings.INTAKE_VERIFY_CODE_MINUTES
    with translation.override(submission.language or settings.LANGUAGE_CODE):
        if verification.channel == VerificationCode.Channel.EMAIL:
            link = settings.SITE_URL.rstrip("/") + reverse("intake:verify_link", args=[token])
            # Every email to a customer says how to withdraw consent, in its text and headers.
            consent_token = consents.token_for_email(address)
            context = {
                "code": code,
                "link": link,
                "minutes": minutes,
                "form_title": submission.form.display_title,
                "consent_link": consents.withdrawal_url(consent_token) if consent_token else "",
            }
            # Only the code, the link and the form's title: never the other answers.
            subject = _("Your verification code is %(code)s") % {"code": code}
            body = render_to_string("intake/email/verification_code.txt", context)
            headers = consents.unsubscribe_headers(consent_token) if consent_token else {}
            EmailMessage(subject, body, None, [address], headers=headers).send()
        else:
            message = _(
                "Your verification code is %(code)s. It expires in %(minutes)s minutes."
            ) % {"code": code, "minutes": minutes}
            send_sms(address, message)


# Checking ----------------------------------------------------------------------------------


def check_code(submission, raw_code):
    """Check a typed code; on success the submission is verified and queued for processing."""
    code = normalize_code(raw_code)
    with transaction.atomic():
        verification = (
            VerificationCode.objects.select_for_update()
            .select_related("submission")
            .filter(submission=submission)
            .first()
        )
        if verification is None or verification.submission.state != Submission.State.PENDING:
            return Outcome.NOT_PENDING
        if verification.attempts >= settings.INTAKE_VERIFY_MAX_ATTEMPTS:
            return Outcome.LOCKED
        if not verification.code_hash or verification.expires_at <= timezone.now():
            return Outcome.EXPIRED
        if hmac.compare_digest(verification.code_hash, hash_code(submission.pk, code)):
            # The link's token is kept: clicked later, it says the address is verified.
            verification.code_hash = ""
            verification.save(update_fields=["code_hash"])
            _verified(verification.submission)
            return Outcome.VERIFIED
        verification.attempts += 1
        verification.save(update_fields=["attempts"])
        if verification.attempts >= settings.INTAKE_VERIFY_MAX_ATTEMPTS:
            return Outcome.LOCKED
        return Outcome.WRONG


def check_token(token):
    """(outcome, submission) for an email link's token; the submission is None if unknown."""
    if not token or len(token) > 100:
        return Outcome.NOT_PENDING, None
    with transaction.atomic():
        verification = (
            VerificationCode.objects.select_for_update()
            .select_related("submission__form")
            .filter(token_hash=hash_token(token))
            .first()
        )
        if verification is None:
            return Outcome.NOT_PENDING, None
        submission = verification.submission
        if submission.state != Submission.State.PENDING:
            return Outcome.NOT_PENDING, submission
        if verification.expires_at <= timezone.now():
            return Outcome.EXPIRED, submission
        verification.code_hash = ""
        verification.save(update_fields=["code_hash"])
        _verified(submission)
        return Outcome.VERIFIED, submission


def _verified(submission):
    from intake import services

    services.mark_verified(submission)


# What the page shows -----------------------------------------------------------------------


@dataclass
class Status:
    """A pending submission's verification, as its page explains it."""

    channel: str
    destination: str
    has_destination: bool
    attempts_left: int
    expired: bool
    locked: bool
    failed: bool
    retrying: bool
    resend_in: int
    sends_left: int

    @property
    def can_resend(self):
        return self.has_destination and not self.locked and self.sends_left > 0

    @property
    def sent(self):
        return not self.failed and not self.expired


def status(submission, verification=None):
    if verification is None:
        # A pending submission stored without a code (none was ever sent) shows as expired,
        # with a new code a click away.
        verification, _created = VerificationCode.objects.get_or_create(
            submission=submission,
            defaults={
                "channel": CHANNELS.get(submission.form.verify, VerificationCode.Channel.EMAIL),
                "expires_at": timezone.now(),
            },
        )
    now = timezone.now()
    ready_at = now
    if verification.sent_at:
        ready_at = verification.sent_at + datetime.timedelta(
            seconds=settings.INTAKE_VERIFY_RESEND_SECONDS
        )
    address = destination(submission)
    return Status(
        channel=verification.channel,
        destination=masked_destination(submission),
        has_destination=bool(address),
        attempts_left=max(0, settings.INTAKE_VERIFY_MAX_ATTEMPTS - verification.attempts),
        expired=not verification.code_hash or verification.expires_at <= now,
        locked=verification.attempts >= settings.INTAKE_VERIFY_MAX_ATTEMPTS,
        failed=bool(verification.last_error) or not address,
        retrying=bool(verification.last_error) and verification.retry_at is not None,
        resend_in=max(0, int((ready_at - now).total_seconds() + 0.999)),
        sends_left=max(0, settings.INTAKE_VERIFY_MAX_SENDS - verification.send_count),
    )


def resend(submission):
    """Send a new code if the cool-down has passed: (sent, Status after)."""
    status(submission)  # makes the row of a submission that has none
    with transaction.atomic():
        verification = VerificationCode.objects.select_for_update().get(submission=submission)
        current = status(submission, verification)
        if not current.can_resend or current.resend_in > 0:
            return False, current
        # Claim the send under the lock, so two quick presses send one message.
        verification.sent_at = timezone.now()
        verification.save(update_fields=["sent_at"])
    sent = deliver(submission.pk)
    return sent, status(submission)
