"""Phone numbers: stored in E.164, typed and shown the way people write them."""

import functools

import phonenumbers
from django.conf import settings


def normalize_phone(raw, region=None):
    """The E.164 form of a phone number, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(value):
    """+8613800138000 -> 138 0013 8000 at home, +1 360-693-4419 abroad."""
    if not value:
        return ""
    if value.startswith("+86") and len(value) == 14 and settings.PHONE_DEFAULT_REGION == "CN":
        # Chinese mobile numbers, most of any list, skip the general (and slow) formatter.
        return f"{value[3:6]} {value[6:10]} {value[10:]}"
    return _format_with_library(value)


@functools.lru_cache(maxsize=4096)
def _format_with_library(value):
    try:
        number = phonenumbers.parse(value)
    except phonenumbers.NumberParseException:
        return value
    home = phonenumbers.region_code_for_number(number) == settings.PHONE_DEFAULT_REGION
    style = phonenumbers.PhoneNumberFormat
    return phonenumbers.format_number(number, style.NATIONAL if home else style.INTERNATIONAL)
