"""The dashboard: every signed-in user has one (its figures cover the customers they may see,
none for an auditor); anonymous visitors are sent to sign in."""

from tests.core.matrix import SIGNED_IN, get

RULES = {
    "dashboard:index": get(SIGNED_IN),
}
