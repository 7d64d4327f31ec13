"""Erasing a customer: for roles with customers.erase_customer (administrators and managers),
of customers they may delete. Others who may see the customer are refused (403), others 404.
An empty POST is shown the confirmation page again (400): nothing is erased."""

from tests.core.matrix import OK, both, every

ERASERS = every(403, admin=OK, manager=OK, staff2=404, auditor=404)

RULES = {
    "customers:erase": both(ERASERS),
}
