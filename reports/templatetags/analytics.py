"""Template filters of the customer analytics page."""

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def percent(share):
    """0.1234 -> "12.3%"."""
    if share is None:
        return ""
    return f"{number_format(share * 100, 1)}%"


@register.filter
def heat(share):
    """The heat-map class (0..9) of a share between 0 and 1, for the cohort table."""
    if not share:
        return 0
    return min(9, 1 + int(share * 9))
