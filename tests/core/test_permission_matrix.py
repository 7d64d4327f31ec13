"""Every URL, every persona, every method: the answer each must get.

The URL patterns are read from the URLconf, so a new URL without a rule here fails
`test_every_url_has_a_rule`. "ok" means the request was served (200, a redirect that is not to
the sign-in page, or a form error 400/409); the others are exact status codes, and "login" is a
redirect to the sign-in page.
"""

import importlib
import pkgutil

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import permissions
from customers.models import BulkAction, SavedView
from tests.core import matrix
from tests.core.matrix import (
    AUDIT,
    BULK,
    CHANGE_CUSTOMER,
    CREATE_CUSTOMERS,
    LOGIN,
    MANAGE,
    NOT_ALLOWED,
    OK,
    OWN_BULK_ACTION,
    OWN_SAVED_VIEW,
    PERSONAS,
    PUBLIC,
    SEE_CUSTOMER,
    SIGNED_IN,
    WORK_WITH_CUSTOMERS,
    both,
    every,
    get,
    post,
)

pytestmark = pytest.mark.django_db

RULES = {
    "home": get(SIGNED_IN),
    "healthz": get(PUBLIC),
    "readyz": get(PUBLIC),
    "accounts:login": both(PUBLIC),
    # Without a password step in progress, the code step sends everyone back to sign in.
    "accounts:login_code": both(dict.fromkeys(PERSONAS, LOGIN)),
    "accounts:logout": {
        "GET": every(NOT_ALLOWED),
        "POST": dict.fromkeys(PERSONAS, LOGIN),
    },
    "accounts:security": get(SIGNED_IN),
    "accounts:password_change": both(SIGNED_IN),
    "accounts:two_factor_setup": both(SIGNED_IN),
    # Administrators and managers must keep their second factor.
    "accounts:two_factor_disable": both(every(OK, admin=403, manager=403)),
    "accounts:recovery_codes": both(SIGNED_IN),
    "accounts:set_language": {"GET": dict.fromkeys(PERSONAS, NOT_ALLOWED), "POST": PUBLIC},
    "customers:list": get(WORK_WITH_CUSTOMERS),
    "customers:create": both(CREATE_CUSTOMERS),
    "customers:duplicates": get(WORK_WITH_CUSTOMERS),
    "customers:bulk": post(BULK),
    "customers:bulk_progress": get(OWN_BULK_ACTION),
    "customers:saved_views": get(WORK_WITH_CUSTOMERS),
    "customers:saved_view_create": post(WORK_WITH_CUSTOMERS),
    "customers:saved_view_rename": post(OWN_SAVED_VIEW),
    "customers:saved_view_delete": post(OWN_SAVED_VIEW),
    "customers:detail": get(SEE_CUSTOMER),
    "customers:edit": both(CHANGE_CUSTOMER),
    "customers:delete": both(CHANGE_CUSTOMER),
    "customers:reveal": post(CHANGE_CUSTOMER),
    "customers:share": post(CHANGE_CUSTOMER),
    "customers:unshare": post(CHANGE_CUSTOMER),
    "customers:interaction_create": both(CHANGE_CUSTOMER),
    "customers:order_create": both(CHANGE_CUSTOMER),
    "customers:consent_create": both(CHANGE_CUSTOMER),
    "manage:index": get(MANAGE),
    "manage:users": get(MANAGE),
    "manage:user_create": both(MANAGE),
    "manage:user_edit": both(MANAGE),
    "manage:user_deactivate": both(MANAGE),
    "manage:user_reactivate": both(MANAGE),
    "manage:user_reset_two_factor": both(MANAGE),
    "manage:roles": get(MANAGE),
    "manage:role_create": both(MANAGE),
    "manage:role_edit": both(MANAGE),
    "manage:role_delete": both(MANAGE),
    "manage:teams": get(MANAGE),
    "manage:team_create": both(MANAGE),
    "manage:team_edit": both(MANAGE),
    "manage:team_delete": both(MANAGE),
    "audit:list": get(AUDIT),
    "audit:export": get(AUDIT),
}

# Each area of the application may keep its rules in a module of tests/core/matrix/, with
# RULES, and optionally make_objects(objects, users) -> dict of extra objects and
# url_kwargs(name, objects) -> the URL's kwargs, or None when it has none of its own.
AREAS = [
    importlib.import_module(f"{matrix.__name__}.{info.name}")
    for info in pkgutil.iter_modules(matrix.__path__)
]
for _area in AREAS:
    assert not RULES.keys() & _area.RULES.keys(), f"{_area.__name__} repeats rules"
    RULES.update(_area.RULES)

# The Django admin is for superusers; everyone else is sent to its own sign-in page.
ADMIN_SITE = {
    "admin:index": [],
    "admin:customers_customer_changelist": [],
    "admin:customers_customer_change": ["customer"],
    "admin:accounts_user_changelist": [],
}


def url_names(patterns=None, namespace=None):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from url_names(pattern.url_patterns, inner or None)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_url_has_a_rule():
    names = {name for name in url_names() if not name.startswith("admin:")}
    assert names - RULES.keys() == set(), "add these URLs to RULES"
    assert RULES.keys() - names == set(), "these rules name URLs that no longer exist"


@pytest.fixture
def world(
    admin_user, manager, staff, staff2, viewer, auditor, customer, teams, verified_login, client
):
    """The objects the URLs need, and a signed-in client for each persona."""
    permissions.share(customer, staff, "change")  # a share row for the withdraw URL
    shared = permissions.customer_shares(customer)[0]
    objects = {
        "customer": customer,
        "saved_view": SavedView.objects.create(user=staff, name="Mine", query="status=active"),
        "bulk": BulkAction.objects.create(
            user=manager, action="set_status", params={"status": "churned"}
        ),
        "user": staff2,
        "role": staff2.groups.get(team__isnull=True),
        "team": teams[1],
        "share": shared,
    }
    users = {
        "admin": admin_user,
        "manager": manager,
        "staff": staff,
        "staff2": staff2,
        "viewer": viewer,
        "auditor": auditor,
    }
    for area in AREAS:
        if hasattr(area, "make_objects"):
            objects.update(area.make_objects(objects, users))
    return objects, users


def url_for(name, objects):
    c = objects["customer"]
    kwargs = {
        "customers:bulk_progress": {"pk": objects["bulk"].pk},
        "customers:saved_view_rename": {"pk": objects["saved_view"].pk},
        "customers:saved_view_delete": {"pk": objects["saved_view"].pk},
        "customers:reveal": {"pk": c.pk, "field": "phone"},
        "customers:unshare": {"pk": c.pk, "kind": "user", "share_pk": objects["share"].pk},
        "manage:user_edit": {"pk": objects["user"].pk},
        "manage:user_deactivate": {"pk": objects["user"].pk},
        "manage:user_reactivate": {"pk": objects["user"].pk},
        "manage:user_reset_two_factor": {"pk": objects["user"].pk},
        "manage:role_edit": {"pk": objects["role"].pk},
        "manage:role_delete": {"pk": objects["role"].pk},
        "manage:team_edit": {"pk": objects["team"].pk},
        "manage:team_delete": {"pk": objects["team"].pk},
    }.get(name)
    for area in AREAS:
        if kwargs is None and hasattr(area, "url_kwargs"):
            kwargs = area.url_kwargs(name, objects)
    if kwargs is None and "<uuid:pk>" in _route(name):
        kwargs = {"pk": c.pk}
    return reverse(name, kwargs=kwargs)


def _route(name):
    namespace, _sep, short = name.rpartition(":")
    resolver = get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver) and pattern.namespace == (namespace or None):
            for inner in pattern.url_patterns:
                if getattr(inner, "name", None) == short:
                    return str(inner.pattern)
    return ""


def answer(response):
    if response.status_code == 302 and response["Location"].startswith(reverse("accounts:login")):
        return LOGIN
    if response.status_code in (200, 302, 400, 409):
        return OK
    return response.status_code


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(RULES))
def test_each_persona_gets_the_expected_answer(name, persona, world, client, verified_login):
    objects, users = world
    if persona != "anonymous":
        verified_login(client, users[persona])
    url = url_for(name, objects)
    for method, answers in RULES[name].items():
        response = getattr(client, method.lower())(url)
        assert answer(response) == answers[persona], f"{method} {url} as {persona}"


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_superusers_reach_the_django_admin(persona, world, client, verified_login):
    objects, users = world
    if persona != "anonymous":
        verified_login(client, users[persona])
    for name, args in ADMIN_SITE.items():
        response = client.get(reverse(name, args=[objects[a].pk for a in args]))
        if persona == "admin":
            assert response.status_code == 200, name
        elif persona == "anonymous":
            assert answer(response) == LOGIN or response["Location"].startswith(
                reverse("admin:login")
            ), name
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith(reverse("admin:login")), name
