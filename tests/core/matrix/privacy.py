"""Consents and the access export. Staff grant and withdraw consents of customers they may
change; managers and administrators export everything held about a customer they may see. The
withdrawal page and the one-click unsubscribe are public: a signed token is their authority."""

from tests.core.matrix import CHANGE_CUSTOMER, OK, PUBLIC, both, every, get, post

EXPORT_DATA = every(403, admin=OK, manager=OK, staff2=404, auditor=404)

RULES = {
    # An empty POST is sent back to the customer page with the form's errors as messages.
    "customers:consent_change": post(CHANGE_CUSTOMER),
    "customers:data_export": get(EXPORT_DATA),
    "consents:manage": both(PUBLIC),
    # GET (someone opening the address) is sent on to the page; POST withdraws.
    "consents:one_click": both(PUBLIC),
}


def make_objects(objects, users):
    from customers import consents

    return {"consent_token": consents.token_for_customer(objects["customer"])}


def url_kwargs(name, objects):
    if name == "customers:data_export":
        return {"pk": objects["customer"].pk, "fmt": "json"}
    if name.startswith("consents:"):
        return {"token": objects["consent_token"]}
    return None
