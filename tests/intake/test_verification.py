"""Verifying a pending submission's email address: codes, links, limits, and the pages."""

import datetime
import email
import email.policy
import hashlib
import re
import socket
import time

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from intake import services, verification
from intake.answer_forms import AnswerForm
from intake.models import Form, FormField, Submission, VerificationCode
from intake.public_views import TOKEN_FIELD, form_token
from tests.intake.conftest import CONTACT_FIELDS

CODE = re.compile(r"\b(\d{6})\b")
LINK = re.compile(r"https?://\S+/verify/(\S+)/")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """Messages an aiosmtpd server received, parsed."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 Message accepted"

    def body(self, index=-1):
        return self.messages[index][1].get_body(preferencelist=("plain",)).get_content()

    def code(self, index=-1):
        return CODE.search(self.body(index)).group(1)

    def link_path(self, index=-1):
        return reverse("intake:verify_link", args=[LINK.search(self.body(index)).group(1)])


@pytest.fixture
def smtp_inbox(settings):
    """A real SMTP server on a local port, with Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    settings.SITE_URL = "http://testserver"
    yield inbox
    controller.stop()


@pytest.fixture
def email_form(built_form):
    """The enquiry form, asking to verify the email address, with a private note question."""
    notes = {
        "key": "notes",
        "type": FormField.Type.LONG_TEXT,
        "label": "备注",
        "target": "customer:notes",
    }
    return built_form(
        *CONTACT_FIELDS,
        notes,
        slug="verified-enquiry",
        title="产品咨询",
        title_en="Product enquiry",
        verify=Form.Verify.EMAIL,
    )


ANSWERS = {
    "name": "王芳",
    "email": "Wang.Fang@Example.com",
    "phone": "139 0013 9000",
    "marketing": "on",
    "notes": "Secret plans for the spring collection",
}


def submit(form, capture, *, language="en", **answers):
    answer_form = AnswerForm(form, data={**ANSWERS, **answers})
    assert answer_form.is_valid(), answer_form.errors
    with capture(execute=True):
        return services.receive_submission(answer_form, channel="website", language=language)


def verify_url(submission):
    return reverse("intake:verify", args=[submission.form.slug, submission.pk])


def resend_url(submission):
    return reverse("intake:verify_resend", args=[submission.form.slug, submission.pk])


def state(submission):
    return Submission.objects.get(pk=submission.pk).state


def wait_for_state(submission, wanted, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = Submission.objects.get(pk=submission.pk)
        if current.state == wanted:
            return current
        time.sleep(0.05)
    raise AssertionError(f"submission still {current.state} after {seconds}s")


# The whole path, through the public form and a real worker ---------------------------------


def test_email_code_from_a_real_smtp_conversation_verifies_and_a_worker_applies_it(
    celery_worker, smtp_inbox, email_form, client
):
    response = client.post(
        reverse("intake:public_form", args=[email_form.slug]),
        {**ANSWERS, TOKEN_FIELD: form_token(email_form)},
    )
    submission = Submission.objects.get()
    assert response.status_code == 302
    assert response["Location"] == verify_url(submission)
    assert submission.state == Submission.State.PENDING
    assert submission.customer is None
    # Nothing about the customer exists before verification.
    from customers.models import Customer

    assert not Customer.objects.with_email("wang.fang@example.com").exists()

    ((recipients, message),) = smtp_inbox.messages
    assert recipients == ["wang.fang@example.com"]
    assert smtp_inbox.code() in message["Subject"]

    page = client.get(verify_url(submission))
    assert "w***@example.com" in page.content.decode()
    response = client.post(verify_url(submission), {"code": smtp_inbox.code()})
    assert response.status_code == 302
    assert response["Location"] == reverse("intake:form_thanks", args=[email_form.slug])

    done = wait_for_state(submission, Submission.State.DONE)
    assert done.verified_at is not None
    customer = Customer.objects.with_email("wang.fang@example.com").get()
    assert done.customer == customer
    assert customer.display_name == "王芳"


# Codes and links -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_is_in_the_submission_language_and_holds_no_other_answers(
    smtp_inbox, email_form, django_capture_on_commit_callbacks
):
    submit(email_form, django_capture_on_commit_callbacks, language="en")
    submit(email_form, django_capture_on_commit_callbacks, language="zh-hans")
    english, chinese = smtp_inbox.body(0), smtp_inbox.body(1)
    assert "Your verification code for “Product enquiry” is:" in english
    assert "expire in 10 minutes" in english
    assert smtp_inbox.messages[0][1]["Subject"].startswith("Your verification code is ")
    assert "产品咨询" in chinese
    for body in (english, chinese):
        for private in ("王芳", "Secret plans", "139", "13900139000"):
            assert private not in body


@pytest.mark.django_db
def test_email_link_verifies_in_one_click_and_a_second_click_says_so(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    response = client.get(smtp_inbox.link_path())
    assert response.status_code == 302
    assert response["Location"] == reverse("intake:form_thanks", args=[email_form.slug])
    assert state(submission) == Submission.State.RECEIVED
    again = client.get(smtp_inbox.link_path())
    assert again.status_code == 200
    assert "Already confirmed" in again.content.decode()


@pytest.mark.django_db
def test_verified_submission_goes_to_the_forms_own_address(
    smtp_inbox, built_form, django_capture_on_commit_callbacks, client
):
    form = built_form(
        *CONTACT_FIELDS, verify=Form.Verify.EMAIL, redirect_url="https://shop.example.com/done"
    )
    submit(form, django_capture_on_commit_callbacks)
    response = client.get(smtp_inbox.link_path())
    assert response["Location"] == "https://shop.example.com/done"


@pytest.mark.django_db
def test_unknown_or_replaced_link_shows_a_clear_page(client, english):
    response = client.get(reverse("intake:verify_link", args=["no-such-token"]))
    assert response.status_code == 404
    assert "This link no longer works" in response.content.decode()


@pytest.mark.django_db
def test_code_and_link_token_are_stored_only_as_keyed_hashes(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, settings
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    code, token = smtp_inbox.code(), smtp_inbox.link_path().rstrip("/").rsplit("/", 1)[1]
    stored = VerificationCode.objects.get(submission=submission)
    row = " ".join(
        str(v) for v in VerificationCode.objects.filter(pk=submission.pk).values()[0].values()
    )
    assert code not in row and token not in row
    assert stored.code_hash == verification.hash_code(submission.pk, code)
    assert stored.code_hash != hashlib.sha256(code.encode()).hexdigest()
    assert stored.token_hash == verification.hash_token(token)
    # Keyed: without the key the hash cannot be recomputed from the code.
    settings.INTAKE_VERIFY_HASH_KEY = "another key"
    assert verification.hash_code(submission.pk, code) != stored.code_hash


@pytest.mark.django_db
def test_code_is_six_digits_and_expires_after_ten_minutes(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client, english
):
    before = timezone.now()
    submission = submit(email_form, django_capture_on_commit_callbacks)
    stored = VerificationCode.objects.get(submission=submission)
    assert re.fullmatch(r"\d{6}", smtp_inbox.code())
    assert (
        datetime.timedelta(minutes=10)
        <= stored.expires_at - before
        < datetime.timedelta(minutes=10, seconds=5)
    )
    VerificationCode.objects.filter(pk=submission.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    response = client.post(verify_url(submission), {"code": smtp_inbox.code()})
    assert response.status_code == 200
    assert "This code has expired. Ask for a new one below." in response.content.decode()
    assert state(submission) == Submission.State.PENDING
    # The link has expired with the code.
    assert client.get(smtp_inbox.link_path()).status_code == 200
    assert state(submission) == Submission.State.PENDING


@pytest.mark.django_db
def test_five_wrong_codes_and_the_customer_must_start_again(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client, english
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    right = smtp_inbox.code()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        response = client.post(verify_url(submission), {"code": wrong})
        assert response.status_code == 200
        text = response.content.decode()
        noun = "attempt" if left == 1 else "attempts"
        assert f"That code is not right. You have {left} more {noun}." in text
    response = client.post(verify_url(submission), {"code": wrong})
    assert "Too many wrong codes were entered" in response.content.decode()
    # Even the right code no longer works, nor does asking for a new one.
    response = client.post(verify_url(submission), {"code": right})
    assert "Too many wrong codes were entered" in response.content.decode()
    assert "Fill in the form again" in response.content.decode()
    assert state(submission) == Submission.State.PENDING
    client.post(resend_url(submission))
    assert len(smtp_inbox.messages) == 1


@pytest.mark.django_db
def test_code_typed_with_spaces_or_full_width_digits_is_accepted(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    code = smtp_inbox.code()
    typed = " ".join([code[:3], code[3:]]).translate(
        str.maketrans("0123456789", "０１２３４５６７８９")
    )
    response = client.post(verify_url(submission), {"code": typed})
    assert response.status_code == 302
    assert state(submission) == Submission.State.RECEIVED


@pytest.mark.django_db
def test_malformed_code_is_an_error_beside_the_field_and_costs_no_attempt(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client, english
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    for bad in ("", "\x00" * 6, "1" * 20, "12345", "abcdef"):
        response = client.post(verify_url(submission), {"code": bad})
        assert response.status_code == 200
    assert VerificationCode.objects.get(pk=submission.pk).attempts == 0
    assert "The code has 6 digits." in response.content.decode()


@pytest.mark.django_db
def test_new_code_only_after_the_cool_down_and_it_replaces_the_old_one(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client, english
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    first = smtp_inbox.code()
    page = client.get(verify_url(submission)).content.decode()
    assert re.search(r"Send a new code in (59|60) s", page)
    assert re.search(r'data-countdown="(59|60)"', page)
    assert "disabled" in page.split("data-countdown=")[1].split(">")[0]

    response = client.post(resend_url(submission))
    assert "Please wait a moment before asking for another code." in response.content.decode()
    assert len(smtp_inbox.messages) == 1

    VerificationCode.objects.filter(pk=submission.pk).update(
        sent_at=timezone.now() - datetime.timedelta(seconds=61)
    )
    response = client.post(resend_url(submission))
    assert "We sent you a new code." in response.content.decode()
    assert len(smtp_inbox.messages) == 2
    second = smtp_inbox.code()
    if second != first:
        response = client.post(verify_url(submission), {"code": first})
        assert response.status_code == 200
    response = client.post(verify_url(submission), {"code": second})
    assert response.status_code == 302


@pytest.mark.django_db
def test_no_more_than_the_allowed_number_of_codes_is_sent(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client, settings, english
):
    settings.INTAKE_VERIFY_MAX_SENDS = 2
    settings.INTAKE_VERIFY_RESEND_SECONDS = 0
    submission = submit(email_form, django_capture_on_commit_callbacks)
    client.post(resend_url(submission))
    response = client.post(resend_url(submission))
    assert len(smtp_inbox.messages) == 2
    assert "No more codes can be sent for this submission." in response.content.decode()


# The pages ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_shows_the_masked_address_and_a_phone_friendly_code_input(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client
):
    submission = submit(email_form, django_capture_on_commit_callbacks, language="en")
    response = client.get(verify_url(submission))
    text = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="en"' in text
    assert "Confirm your email address" in text
    assert "w***@example.com" in text
    assert "wang.fang@example.com" not in text
    code_input = re.search(r"<input[^>]*name=\"code\"[^>]*>", text).group(0)
    assert 'inputmode="numeric"' in code_input
    assert 'autocomplete="one-time-code"' in code_input
    assert "5 attempts left." in text


@pytest.mark.django_db
def test_page_is_in_the_submission_language(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client
):
    submission = submit(email_form, django_capture_on_commit_callbacks, language="zh-hans")
    response = client.get(verify_url(submission), headers={"accept-language": "en"})
    assert '<html lang="zh-hans"' in response.content.decode()


@pytest.mark.django_db
def test_submission_that_is_not_pending_shows_a_clear_page(email_form, client, english):
    submission = Submission.objects.create(form=email_form, state=Submission.State.DONE)
    for response in (
        client.get(verify_url(submission)),
        client.post(verify_url(submission), {"code": "123456"}),
        client.post(resend_url(submission)),
    ):
        assert response.status_code in (200, 302)
    page = client.get(verify_url(submission))
    assert "Already confirmed" in page.content.decode()


@pytest.mark.django_db
def test_submission_of_another_form_or_unknown_is_not_found(email_form, built_form, client):
    other = built_form(*CONTACT_FIELDS)
    submission = Submission.objects.create(form=email_form, state=Submission.State.PENDING)
    assert client.get(reverse("intake:verify", args=[other.slug, submission.pk])).status_code == 404


@pytest.mark.django_db
def test_wrong_methods_and_other_sites_are_refused(
    smtp_inbox, email_form, django_capture_on_commit_callbacks, client
):
    submission = submit(email_form, django_capture_on_commit_callbacks)
    assert client.get(resend_url(submission)).status_code == 405
    assert client.post(smtp_inbox.link_path()).status_code == 405
    response = client.post(
        verify_url(submission),
        {"code": smtp_inbox.code()},
        headers={"origin": "https://evil.example.com"},
    )
    assert response.status_code == 403
    assert state(submission) == Submission.State.PENDING


@pytest.mark.django_db
def test_email_provider_failure_is_shown_not_a_server_error(
    settings, email_form, django_capture_on_commit_callbacks, client, english
):
    # Nothing listens on this port: the SMTP connection is refused.
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    settings.INTAKE_VERIFY_RETRIES = 0  # no worker here; tests/intake/test_sms.py retries
    submission = submit(email_form, django_capture_on_commit_callbacks)
    stored = VerificationCode.objects.get(pk=submission.pk)
    assert stored.last_error
    assert stored.send_count == 0
    response = client.get(verify_url(submission))
    assert response.status_code == 200
    assert "We could not send the code. Please try again in a minute." in response.content.decode()


class RefusingInbox(Inbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return f"550 5.1.1 <{address}>: Recipient address rejected"


@pytest.mark.django_db
def test_a_refused_recipient_is_neither_logged_nor_stored_in_clear(
    settings, email_form, django_capture_on_commit_callbacks, caplog
):
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(RefusingInbox(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    settings.INTAKE_VERIFY_RETRIES = 0
    try:
        submission = submit(email_form, django_capture_on_commit_callbacks)
    finally:
        controller.stop()
    stored = VerificationCode.objects.get(pk=submission.pk)
    assert "550" in stored.last_error
    assert "wang.fang" not in stored.last_error.lower()
    (warning,) = [r for r in caplog.records if r.name == "intake.verification"]
    assert "550" in warning.getMessage()
    assert "wang.fang" not in warning.getMessage().lower()


# Housekeeping ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_purge_deletes_only_pending_submissions_older_than_the_limit(email_form, settings):
    old = timezone.now() - datetime.timedelta(days=8)
    stale = Submission.objects.create(form=email_form, state="pending", created_at=old)
    VerificationCode.objects.create(submission=stale, channel="email", expires_at=old)
    fresh = Submission.objects.create(form=email_form, state="pending")
    kept = Submission.objects.create(form=email_form, state="done", created_at=old)
    out = _run_purge()
    assert out == "Deleted 1 pending submissions."
    assert set(Submission.objects.values_list("pk", flat=True)) == {fresh.pk, kept.pk}
    assert not VerificationCode.objects.exists()
    settings.INTAKE_PENDING_DAYS = 0
    assert _run_purge() == "Deleted 1 pending submissions."
    assert _run_purge("--days", "3") == "Deleted 0 pending submissions."


def _run_purge(*args):
    import io

    out = io.StringIO()
    call_command("purge_pending_submissions", *args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_purge_with_days_given(email_form):
    three_days = timezone.now() - datetime.timedelta(days=3)
    Submission.objects.create(form=email_form, state="pending", created_at=three_days)
    assert _run_purge() == "Deleted 0 pending submissions."
    assert _run_purge("--days", "2") == "Deleted 1 pending submissions."


def test_beat_runs_the_purge_daily_and_requeues_every_few_minutes(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["purge-pending-submissions"]["task"] == "intake.tasks.purge_pending_submissions"
    assert schedule["purge-pending-submissions"]["schedule"] == 24 * 60 * 60
    assert schedule["requeue-received-submissions"]["schedule"] <= 10 * 60


def test_received_submission_whose_message_was_lost_is_processed_later(celery_worker, email_form):
    # Stored as received, but never queued (as if the broker had been down).
    lost = Submission.objects.create(
        form=email_form,
        state=Submission.State.RECEIVED,
        private_answers={"name": "李雷", "email": "li.lei@example.com"},
        created_at=timezone.now() - datetime.timedelta(minutes=10),
    )
    recent = Submission.objects.create(form=email_form, state=Submission.State.RECEIVED)
    assert services.requeue_received_submissions() == 1
    done = wait_for_state(lost, Submission.State.DONE)
    assert done.customer.display_name == "李雷"
    assert state(recent) == Submission.State.RECEIVED


@pytest.mark.django_db
def test_pending_submission_without_a_code_offers_one(smtp_inbox, email_form, client, english):
    submission = Submission.objects.create(
        form=email_form,
        state=Submission.State.PENDING,
        private_answers={"email": "late@example.com", "name": "迟到"},
    )
    page = client.get(verify_url(submission)).content.decode()
    assert "The code has expired. Ask for a new one below." in page
    assert 'data-countdown="0"' in page
    response = client.post(resend_url(submission))
    assert "We sent you a new code." in response.content.decode()
    assert smtp_inbox.messages[0][0] == ["late@example.com"]
