"""The duplicate finder and merging: for those with customers.merge_customers (administrators
and managers), about customers they may change. Everyone else is refused before any customer
is looked up (403), so the answer says nothing about the customers in the URL."""

from tests.core.matrix import OK, both, every, get, post

MERGERS = every(403, admin=OK, manager=OK)

RULES = {
    "duplicates:list": get(MERGERS),
    "duplicates:refresh": post(MERGERS),
    "duplicates:scan": get(MERGERS),
    "duplicates:dismiss": post(MERGERS),
    "duplicates:merge_with": get(MERGERS),
    # An empty POST is shown the page again with its errors (400).
    "duplicates:merge": both(MERGERS),
    "duplicates:merge_detail": get(MERGERS),
    # A fresh merge for each persona: undone by those who may.
    "duplicates:undo": post(MERGERS),
}


def make_objects(objects, users):
    from customers import merging
    from customers.models import Customer, DuplicateScan

    customer = objects["customer"]
    twin = Customer.objects.create(
        display_name="张伟", company=customer.company, owner=customer.owner, team=customer.team
    )
    merged = Customer.objects.create(
        display_name="章伟", company=customer.company, owner=customer.owner, team=customer.team
    )
    merge = merging.merge_customers(
        survivor=twin,
        merged=merged,
        user=users["admin"],
        survivor_version=twin.version,
        merged_version=merged.version,
    )
    return {
        "twin": Customer.objects.get(pk=twin.pk),
        "merge": merge,
        "scan": DuplicateScan.objects.create(),
    }


def url_kwargs(name, objects):
    pair = {"pk": objects["customer"].pk, "other": objects["twin"].pk}
    return {
        "duplicates:scan": {"pk": objects["scan"].pk},
        "duplicates:dismiss": pair,
        "duplicates:merge": pair,
        "duplicates:merge_detail": {"pk": objects["merge"].pk},
        "duplicates:undo": {"pk": objects["merge"].pk},
    }.get(name)
