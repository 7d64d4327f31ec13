"""The archive of inactive customers: an archived customer's page, restoring and erasing them
obey the rules of the customer (owned by `staff` in the team `manager` manages and `viewer` is
in); erasing, as for a live customer, also needs a role that may erase."""

from tests.core.matrix import CHANGE_CUSTOMER, SEE_CUSTOMER, both, get, post
from tests.core.matrix.erasure import ERASERS

RULES = {
    "customers:archived_detail": get(SEE_CUSTOMER),
    "customers:archived_restore": post(CHANGE_CUSTOMER),
    "customers:archived_erase": both(ERASERS),
}


def make_objects(objects, users):
    from customers import archiving
    from customers.models import ArchivedCustomer, Customer

    customer = objects["customer"]
    quiet = Customer.objects.create(
        display_name="王静", owner=customer.owner, team=customer.team, phone="+8613700137000"
    )
    archiving.archive_customers([quiet.pk])
    return {"archived": ArchivedCustomer.objects.get(pk=quiet.pk)}


def url_kwargs(name, objects):
    if name in RULES:
        return {"pk": objects["archived"].pk}
    return None
