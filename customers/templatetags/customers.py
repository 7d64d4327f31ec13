import phonenumbers
from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def phone(value):
    """+8613800138000 -> 138 0013 8000 at home, +1 360-693-4419 abroad."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value)
    except phonenumbers.NumberParseException:
        return value
    home = phonenumbers.region_code_for_number(number) == settings.PHONE_DEFAULT_REGION
    style = phonenumbers.PhoneNumberFormat
    return phonenumbers.format_number(number, style.NATIONAL if home else style.INTERNATIONAL)


@register.simple_tag(takes_context=True)
def sort_link(context, label, key, current):
    """A column heading that sorts by `key`, and reverses the sort when it already does."""
    ascending_key = key.lstrip("-")
    if current.lstrip("-") == ascending_key:
        target = ascending_key if current.startswith("-") else f"-{ascending_key}"
        arrow = " ↓" if current.startswith("-") else " ↑"
        state = "descending" if current.startswith("-") else "ascending"
    else:
        target, arrow, state = key, "", "none"
    query = context["request"].GET.copy()
    for name in ("after", "before", "page"):
        query.pop(name, None)
    query["sort"] = target
    return format_html(
        '<a href="?{}" data-sort="{}" title="{}">{}{}</a>',
        query.urlencode(),
        state,
        _("Sort"),
        label,
        arrow,
    )
