"""Text messages, through a small backend chosen by settings.SMS_BACKEND.

`LoggingBackend` writes messages to the log (development and tests); `HttpBackend` posts them as
JSON to a provider's gateway configured by the SMS_HTTP_* settings. A backend raises SmsError
when a message could not be handed over, so the caller can tell the customer and try again.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.utils.module_loading import import_string

from customers.masking import mask_phone

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """The provider did not accept the message."""


class LoggingBackend:
    """Logs each message instead of sending it."""

    def send(self, phone, message):
        logger.info("SMS to %s: %s", mask_phone(phone), message)


class HttpBackend:
    """Posts {"to", "from", "text"} as JSON to SMS_HTTP_URL with a bearer token.

    Anything but a 2xx answer within SMS_HTTP_TIMEOUT seconds is a failure.
    """

    def __init__(self, *, url=None, token=None, sender=None, timeout=None):
        self.url = url if url is not None else settings.SMS_HTTP_URL
        self.token = token if token is not None else settings.SMS_HTTP_TOKEN
        self.sender = sender if sender is not None else settings.SMS_HTTP_SENDER
        self.timeout = timeout if timeout is not None else settings.SMS_HTTP_TIMEOUT

    def send(self, phone, message):
        if not self.url:
            raise SmsError("SMS_HTTP_URL is not set.")
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            # Not a gateway (urllib would also read file: and ftp: addresses); and the address,
            # which may carry the provider's key, is not repeated in the error.
            raise SmsError("SMS_HTTP_URL is not an http or https address.")
        body = json.dumps({"to": phone, "from": self.sender, "text": message}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            raise SmsError(f"The SMS provider answered {error.code}.") from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise SmsError(f"The SMS provider could not be reached: {error}") from error
        if not 200 <= status < 300:
            raise SmsError(f"The SMS provider answered {status}.")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # Followed, a redirect would turn the POST into a GET without the message and report it
    # as sent; a gateway that moved is a configuration error to see.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_RefuseRedirects)


def get_backend():
    return import_string(settings.SMS_BACKEND)()


def send_sms(phone, message):
    """Send one text message; raises SmsError when the provider did not take it."""
    get_backend().send(phone, message)
