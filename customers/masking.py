"""How sensitive values look to someone who may not read them: enough to recognise, not to use."""

import datetime

from customers.phones import format_phone

# The customer fields that are encrypted at rest and masked on screen.
SENSITIVE_FIELDS = ("phone", "email", "birthday", "street")


def mask_phone(value):
    """+8613800138000 -> 138****8000: the operator prefix and the last four digits."""
    if not value:
        return ""
    # Chinese numbers are shown in national form (138...), foreign ones keep their "+" prefix.
    digits = format_phone(value).replace(" ", "").replace("-", "")
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) > 7 else "****"


def mask_email(value):
    """zhang.wei@example.com -> z***@example.com."""
    if not value:
        return ""
    local, _at, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_birthday(value):
    """Only the year: an age band stays readable, the date of birth does not."""
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.date.fromisoformat(value)
    return f"{value.year}-**-**"


def mask_street(value):
    """The first few characters: a building number or lane is left out."""
    if not value:
        return ""
    return f"{value[:4]}****" if len(value) > 4 else "****"


MASKS = {"phone": mask_phone, "email": mask_email, "birthday": mask_birthday, "street": mask_street}


def mask(field, value):
    return MASKS[field](value)
