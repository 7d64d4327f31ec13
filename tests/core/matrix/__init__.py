"""The answers personas get, and the rules of each area of the application.

tests/core/test_permission_matrix.py holds the rules of the core pages and reads every module of
this package for more: each has RULES, and optionally make_objects(objects, users) -> a dict of
the extra objects its URLs need, and url_kwargs(name, objects) -> a URL's kwargs, or None.
"""

PERSONAS = ("anonymous", "admin", "manager", "staff", "staff2", "viewer", "auditor")
OK, LOGIN, NOT_ALLOWED = "ok", "login", 405


def every(answer, **exceptions):
    """The same answer for every signed-in persona (anonymous visitors are sent to sign in)."""
    return {"anonymous": LOGIN, **dict.fromkeys(PERSONAS[1:], answer), **exceptions}


PUBLIC = dict.fromkeys(PERSONAS, OK)
SIGNED_IN = every(OK)
# Customer pages of a customer that `staff` owns in the team `manager` manages and `viewer` is in.
SEE_CUSTOMER = every(OK, staff2=404, auditor=404)
CHANGE_CUSTOMER = every(OK, viewer=403, staff2=404, auditor=404)
WORK_WITH_CUSTOMERS = every(OK, auditor=403)
CREATE_CUSTOMERS = every(OK, viewer=403, auditor=403)
BULK = every(403, admin=OK, manager=OK)
MANAGE = every(403, admin=OK)
AUDIT = every(403, admin=OK, auditor=OK)
OWN_SAVED_VIEW = every(404, staff=OK)
OWN_BULK_ACTION = every(404, manager=OK)
GET_ONLY = {"POST": dict.fromkeys(PERSONAS, NOT_ALLOWED)}
POST_ONLY = {"GET": dict.fromkeys(PERSONAS, NOT_ALLOWED)}
NOT_ALLOWED_SIGNED_IN = every(NOT_ALLOWED)


def get(answers, post=None):
    """Answers to GET; POST is not allowed (anonymous visitors are sent to sign in first)."""
    # Anonymous visitors are sent to sign in before the method is looked at.
    anonymous = NOT_ALLOWED if answers["anonymous"] == OK else answers["anonymous"]
    default = every(NOT_ALLOWED, anonymous=anonymous)
    return {"GET": answers, "POST": post or default}


def post(answers, get=None):
    return {"GET": get or NOT_ALLOWED_SIGNED_IN, "POST": answers}


def both(answers):
    return {"GET": answers, "POST": answers}
