"""Verification codes by text message: the logging backend, and an HTTP gateway on a real socket."""

import http.server
import json
import logging
import re
import threading
import time

import pytest
from django.urls import reverse

from intake import services
from intake.answer_forms import AnswerForm
from intake.models import Form, Submission, VerificationCode
from intake.sms import HttpBackend, SmsError, send_sms
from tests.intake.conftest import CONTACT_FIELDS

CODE = re.compile(r"\b(\d{6})\b")


class Gateway(http.server.ThreadingHTTPServer):
    """A stand-in SMS provider: records each request and answers with the next status."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.received = []
        self.statuses = []
        self.delay = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/send"

    def texts(self):
        return [body["text"] for _headers, body in self.received]


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        server = self.server
        time.sleep(server.delay)
        server.received.append((dict(self.headers), body))
        status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if status < 300 else b'{"error": "busy"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway(settings):
    server = Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SMS_BACKEND = "intake.sms.HttpBackend"
    settings.SMS_HTTP_URL = server.url
    settings.SMS_HTTP_TOKEN = "gateway-secret"
    settings.SMS_HTTP_SENDER = "CIMS"
    settings.SMS_HTTP_TIMEOUT = 2
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def phone_form(built_form):
    return built_form(*CONTACT_FIELDS, slug="phone-check", verify=Form.Verify.PHONE)


ANSWERS = {"name": "赵敏", "phone": "138 0013 8000", "email": "zhao.min@example.com"}


def submit(form, *, language="en"):
    answer_form = AnswerForm(form, data=ANSWERS)
    assert answer_form.is_valid(), answer_form.errors
    return services.receive_submission(answer_form, channel="website", language=language)


def verify_url(submission):
    return reverse("intake:verify", args=[submission.form.slug, submission.pk])


def wait_until(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not so after {seconds}s")


# The logging backend -------------------------------------------------------------------------


@pytest.mark.django_db
def test_logging_backend_logs_the_text_and_its_code_verifies(
    phone_form, client, caplog, django_capture_on_commit_callbacks, settings
):
    settings.SMS_BACKEND = "intake.sms.LoggingBackend"
    with caplog.at_level(logging.INFO, logger="intake.sms"):
        with django_capture_on_commit_callbacks(execute=True):
            submission = submit(phone_form)
    (record,) = [r for r in caplog.records if r.name == "intake.sms"]
    message = record.getMessage()
    assert "138****8000" in message and "13800138000" not in message
    assert "Your verification code is" in message
    assert "It expires in 10 minutes." in message
    page = client.get(verify_url(submission)).content.decode()
    assert "Confirm your mobile number" in page
    assert "138****8000" in page
    response = client.post(verify_url(submission), {"code": CODE.search(message).group(1)})
    assert response.status_code == 302
    assert Submission.objects.get(pk=submission.pk).state == Submission.State.RECEIVED
    assert VerificationCode.objects.get(pk=submission.pk).channel == "sms"


# The HTTP backend ----------------------------------------------------------------------------


def test_http_backend_posts_json_with_the_bearer_token(gateway):
    send_sms("+8613800138000", "Your verification code is 123456.")
    ((headers, body),) = gateway.received
    assert body == {
        "to": "+8613800138000",
        "from": "CIMS",
        "text": "Your verification code is 123456.",
    }
    assert headers["Authorization"] == "Bearer gateway-secret"
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [500, 503, 400, 404, 302])
def test_http_backend_treats_any_answer_but_2xx_as_a_failure(gateway, status):
    gateway.statuses = [status]
    with pytest.raises(SmsError, match=str(status)):
        send_sms("+8613800138000", "text")


def test_http_backend_accepts_any_2xx(gateway):
    gateway.statuses = [202]
    send_sms("+8613800138000", "text")
    assert len(gateway.received) == 1


def test_http_backend_times_out(gateway):
    gateway.delay = 1.5
    with pytest.raises(SmsError, match="could not be reached"):
        HttpBackend(timeout=0.3).send("+8613800138000", "text")


def test_http_backend_reports_an_unreachable_or_missing_gateway(settings):
    with pytest.raises(SmsError):
        HttpBackend(url="http://127.0.0.1:9/send", timeout=1).send("+8613800138000", "text")
    settings.SMS_HTTP_URL = ""
    with pytest.raises(SmsError, match="SMS_HTTP_URL"):
        HttpBackend().send("+8613800138000", "text")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/send", "gateway.example.com/send?key=SECRET"]
)
def test_http_backend_posts_only_to_http_addresses_and_never_repeats_them(url):
    with pytest.raises(SmsError, match="not an http or https address") as refused:
        HttpBackend(url=url, timeout=1).send("+8613800138000", "text")
    assert "SECRET" not in str(refused.value) and "passwd" not in str(refused.value)


def test_sms_backend_settings_come_from_the_environment():
    from django.conf import settings

    assert settings.SMS_BACKEND in ("intake.sms.LoggingBackend", "intake.sms.HttpBackend")
    for name in ("SMS_HTTP_URL", "SMS_HTTP_TOKEN", "SMS_HTTP_SENDER", "SMS_HTTP_TIMEOUT"):
        assert hasattr(settings, name)


# Failures the customer sees, and the worker retrying ------------------------------------------


def test_provider_error_is_shown_to_the_customer_and_a_worker_sends_the_code_later(
    celery_worker, gateway, phone_form, client, settings
):
    settings.INTAKE_VERIFY_RETRY_SECONDS = 1
    gateway.statuses = [500]
    submission = submit(phone_form)
    page = client.get(verify_url(submission))
    assert page.status_code == 200
    assert "We could not send the code just now. We will try again in a moment" in (
        page.content.decode()
    )
    wait_until(lambda: len(gateway.received) == 2)
    wait_until(lambda: VerificationCode.objects.get(pk=submission.pk).send_count == 1)
    stored = VerificationCode.objects.get(pk=submission.pk)
    assert (stored.last_error, stored.retry_at) == ("", None)
    page = client.get(verify_url(submission)).content.decode()
    assert "We sent a 6-digit code by text message to" in page
    # The code of the failed message is void; the one that went out works.
    code = CODE.search(gateway.texts()[-1]).group(1)
    response = client.post(verify_url(submission), {"code": code})
    assert response.status_code == 302
    wait_until(lambda: Submission.objects.get(pk=submission.pk).state == Submission.State.DONE)
    customer = Submission.objects.get(pk=submission.pk).customer
    assert customer.phone == "+8613800138000"


def test_after_the_last_retry_the_customer_is_asked_to_try_again(
    celery_worker, gateway, phone_form, client, settings
):
    settings.INTAKE_VERIFY_RETRY_SECONDS = 0
    settings.INTAKE_VERIFY_RETRIES = 2
    gateway.statuses = [500, 500, 500]
    submission = submit(phone_form)
    wait_until(lambda: len(gateway.received) == 3)
    wait_until(lambda: VerificationCode.objects.get(pk=submission.pk).retry_at is None)
    time.sleep(0.5)
    assert len(gateway.received) == 3
    stored = VerificationCode.objects.get(pk=submission.pk)
    assert "500" in stored.last_error
    page = client.get(verify_url(submission)).content.decode()
    assert "We could not send the code. Please try again in a minute." in page
    # The customer asks again after the cool-down, and this time the provider takes it.
    VerificationCode.objects.filter(pk=submission.pk).update(
        sent_at=stored.sent_at.replace(year=2000)
    )
    response = client.post(reverse("intake:verify_resend", args=[phone_form.slug, submission.pk]))
    assert "We sent you a new code." in response.content.decode()
    assert len(gateway.received) == 4


@pytest.mark.django_db
def test_codes_go_only_to_numbers_of_the_allowed_countries(phone_form, settings, english):
    settings.SMS_ALLOWED_REGIONS = ["CN"]
    abroad = AnswerForm(phone_form, data={**ANSWERS, "phone": "+44 7400 123456"})
    assert not abroad.is_valid()
    assert "Codes can only be sent to mobile numbers of CN." in abroad.errors["phone"]
    assert AnswerForm(phone_form, data=ANSWERS).is_valid()
    settings.SMS_ALLOWED_REGIONS = []
    assert AnswerForm(phone_form, data={**ANSWERS, "phone": "+44 7400 123456"}).is_valid()


@pytest.mark.django_db
def test_staff_may_type_in_a_number_from_abroad_as_no_code_is_sent(phone_form, settings):
    from intake.entry_views import StaffAnswerForm

    settings.SMS_ALLOWED_REGIONS = ["CN"]
    assert StaffAnswerForm(phone_form, data={**ANSWERS, "phone": "+44 7400 123456"}).is_valid()
