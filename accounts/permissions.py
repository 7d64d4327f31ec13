"""Every decision about who may see or change customer data is made in this module.

Views fetch a customer through `get_customer_for` on their first line and start lists from
`Customer.objects.visible_to(user)`; background tasks do the same with the user who asked.
A customer the user may not see is a 404, exactly like one that does not exist.
"""

from django.http import Http404
from django.shortcuts import get_object_or_404

from customers.models import Customer

ACTIONS = ("view", "change", "delete")


def visible_customers(user, queryset=None):
    """The customers `user` may see, as a filter on `queryset` (all customers by default)."""
    queryset = Customer.objects.all() if queryset is None else queryset
    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    return queryset


def changeable_customers(user, queryset=None):
    """The customers `user` may edit (and so change in bulk)."""
    return visible_customers(user, queryset)


def can(user, action, customer):
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    return user.is_authenticated and user.is_active


def can_create_customer(user):
    return user.is_authenticated and user.is_active


def get_customer_for(user, pk, action="view"):
    """The customer `pk` if `user` may `action` it; otherwise 404."""
    customer = get_object_or_404(visible_customers(user).select_related("owner", "team"), pk=pk)
    if not can(user, action, customer):
        raise Http404
    return customer
