import uuid
from html import escape

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from accounts.permissions import can_view_sensitive
from customers.masking import mask, mask_email, mask_phone
from customers.models import Status
from customers.phones import format_phone

register = template.Library()


CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$", "JPY": "JP¥"}


@register.filter
def phone(value):
    return format_phone(value)


@register.filter
def money(amount, currency):
    """1999 and CNY -> ¥1,999.00; a currency without a symbol keeps its code: SGD 20.00."""
    if amount is None:
        return ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    figure = f"{amount:,.2f}"
    return f"{symbol}{figure}" if symbol else f"{currency} {figure}"


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


@register.simple_tag
def customer_rows(customers, selectable=True):
    """The customer list's table rows.

    Built in Python, as the admin's change list builds its rows: the template engine and even
    format_html spend a tenth of a millisecond or more on each row, which made them most of the
    list page's cost. Every value goes through html.escape.
    """
    placeholder = str(uuid.UUID(int=0))
    detail_url = reverse("customers:detail", args=[placeholder])
    select_label = _("Select %(name)s")
    statuses = {value: escape(str(label)) for value, label in Status.choices}
    return mark_safe(
        "".join(
            _customer_row(
                c, detail_url, placeholder, select_label if selectable else None, statuses
            )
            for c in customers
        )
    )


def _customer_row(customer, detail_url, placeholder, select_label, statuses):
    pk = str(customer.pk)
    # Lists show sensitive values masked, for everyone: reading one is a recorded click on the
    # customer's page.
    name, company, email = escape(customer.display_name), escape(customer.company), customer.email
    sub = f'<span class="sub col-sm-only">{company}</span>' if company else ""
    mail = f'<br><span class="muted small">{escape(mask_email(email))}</span>' if email else ""
    tags = "".join(f'<span class="tag">{escape(tag)}</span>' for tag in customer.tags)
    check = ""
    if select_label:
        label = escape(select_label % {"name": customer.display_name})
        check = (
            f'<td class="col-check"><input type="checkbox" name="selected" value="{pk}" '
            f'form="bulk-form" aria-label="{label}"></td>'
        )
    created = customer.created_at
    return (
        f"<tr>{check}"
        f'<td class="col-name"><a href="{detail_url.replace(placeholder, pk)}">{name}</a>{sub}</td>'
        f'<td class="col-md">{company}</td>'
        f'<td class="col-lg"><span class="nowrap">{escape(mask_phone(customer.phone))}</span>'
        f"{mail}</td>"
        f'<td class="col-md">{escape(customer.city)}</td>'
        f'<td><span class="status status-{escape(customer.status)}">'
        f"{statuses.get(customer.status, '')}</span></td>"
        f'<td class="col-lg">{tags}</td>'
        f'<td class="col-lg">{escape(str(customer.owner or ""))}</td>'
        f'<td class="col-md nowrap"><time datetime="{created.isoformat()}">'
        f"{timezone.localtime(created).strftime('%Y-%m-%d')}</time></td></tr>"
    )


@register.filter
def masked(value, field):
    """A sensitive value as those who have not revealed it see it: 138****8000."""
    return mask(field, value)


@register.inclusion_tag("customers/sensitive_value.html", takes_context=True)
def sensitive(context, customer, field):
    """A sensitive field of `customer`: masked, with a recorded "Show" for those allowed."""
    value = getattr(customer, field)
    return {
        "customer": customer,
        "field": field,
        "value": value,
        "revealed": field in context.get("revealed", ()),
        "can_reveal": can_view_sensitive(context["request"].user),
        "csrf_token": context.get("csrf_token"),
    }
