"""Customers' consents: recording grants and withdrawals, their current state, and the links
that let a customer withdraw without signing in.

A Consent row is one grant or withdrawal; the customer's consent to a purpose is the latest row
of that purpose (by recorded_at, the id breaking ties). Customer.consented_purposes holds the
purposes currently granted, kept by database triggers (migration 0015_consented_purposes_triggers)
from whatever writes consents, so lists and exports filter on it through a GIN index.

Withdrawal links carry a token signed with SECRET_KEY (django.core.signing) that names the
customer, or, in an email to an address no customer has yet, the address's blind index. Tokens
do not expire: an unsubscribe link must keep working for as long as the email is kept. They
cannot be guessed or enumerated, and they let their holder do one thing, withdraw.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from customers import search
from customers.models import Consent, ConsentPurpose, Customer, Source

TOKEN_SALT = "customers.consent_withdrawal"
# The purpose an email's List-Unsubscribe header withdraws (RFC 8058 one-click).
EMAIL_PURPOSE = ConsentPurpose.MARKETING_EMAIL
# Longer tokens are refused before their signature is checked.
MAX_TOKEN_LENGTH = 200


# Recording ---------------------------------------------------------------------------------


def record_consent(
    *,
    customer,
    purpose,
    granted,
    source,
    recorded_by=None,
    wording="",
    wording_version="",
    recorded_at=None,
    via="staff",
):
    """Record one grant or withdrawal, and audit it with the state it replaces."""
    purpose = ConsentPurpose(purpose)
    with transaction.atomic():
        before = current_state(customer, purpose)
        consent = Consent.objects.create(
            customer=customer,
            purpose=purpose,
            granted=granted,
            source=source,
            recorded_by=recorded_by,
            wording=wording,
            wording_version=wording_version,
            recorded_at=recorded_at or timezone.now(),
        )
        audit.record(
            audit.Action.CONSENT_CHANGE,
            target=consent,
            customer=customer.pk,
            data={
                "purpose": purpose.value,
                "granted": granted,
                "before": None if before is None else before.granted,
                "source": source,
                "wording_version": consent.wording_version,
                "via": via,
            },
        )
    return consent


def withdraw_all(customer, *, source, via, purposes=None):
    """Withdraw every purpose the customer currently consents to (or those of `purposes`);
    returns the purposes withdrawn. A purpose not granted gets no new record."""
    with transaction.atomic():
        # The row lock makes two clicks at once record one withdrawal, not two.
        granted = (
            Customer.objects.select_for_update()
            .filter(pk=customer.pk)
            .values_list("consented_purposes", flat=True)
            .first()
        ) or []
        withdrawn = [p for p in granted if purposes is None or p in purposes]
        for purpose in withdrawn:
            record_consent(
                customer=customer, purpose=purpose, granted=False, source=source, via=via
            )
    return withdrawn


# Reading -----------------------------------------------------------------------------------


def latest_first(consents):
    return consents.order_by("-recorded_at", "-id")


def current_state(customer, purpose):
    """The latest record of the purpose, or None when the customer was never asked."""
    return latest_first(Consent.objects.filter(customer=customer, purpose=purpose)).first()


@dataclass
class PurposeState:
    purpose: str
    label: str
    current: Consent | None = None
    history: list = field(default_factory=list)

    @property
    def granted(self):
        return self.current is not None and self.current.granted

    @property
    def state(self):
        if self.current is None:
            return "never"
        return "granted" if self.current.granted else "withdrawn"


def overview(customer):
    """Every purpose with its current record and its history, newest first (one query)."""
    states = {value: PurposeState(value, label) for value, label in ConsentPurpose.choices}
    records = latest_first(customer.consents.select_related("recorded_by"))
    for consent in records:
        state = states.get(consent.purpose)
        if state is None:
            continue
        if state.current is None:
            state.current = consent
        state.history.append(consent)
    return list(states.values())


def consenting(queryset, *purposes):
    """The customers of `queryset` who consent to every one of `purposes` now (the GIN
    index's @>)."""
    return queryset.filter(consented_purposes__contains=list(purposes))


def not_consenting(queryset, *purposes):
    """The customers of `queryset` who consent to none of `purposes` now."""
    return queryset.exclude(consented_purposes__overlap=list(purposes))


# Withdrawal links --------------------------------------------------------------------------


def _signer():
    return signing.Signer(salt=TOKEN_SALT)


def token_for_customer(customer):
    return _signer().sign_object({"c": str(customer.pk)})


def token_for_email(address):
    """A token for an email sent to `address`: the customer with that address when there is
    one, else the address's blind index, so that the link works once a customer has it."""
    customer = Customer.objects.with_email(address).only("pk").first()
    if customer is not None:
        return token_for_customer(customer)
    index = search.email_index(search.normalize_email(address))
    return _signer().sign_object({"e": bytes(index).hex()}) if index else None


def customer_for_token(token):
    """The customer a token names, or None for a token that is not ours or names no one now."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    customers = Customer.objects.all()
    try:
        if "c" in payload:
            return customers.filter(pk=payload["c"]).first()
        if "e" in payload:
            return customers.filter(email_index=bytes.fromhex(payload["e"])).first()
    except (ValueError, TypeError, ValidationError):
        return None
    return None


def withdrawal_url(token):
    return settings.SITE_URL.rstrip("/") + reverse("consents:manage", args=[token])


def unsubscribe_headers(token):
    """RFC 2369 and RFC 8058 headers for an email whose link carries `token`."""
    one_click = settings.SITE_URL.rstrip("/") + reverse("consents:one_click", args=[token])
    return {
        "List-Unsubscribe": f"<{one_click}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


PUBLIC_SOURCE = Source.WEB_FORM


# Measuring ---------------------------------------------------------------------------------


def measure_consent_filter(*, purpose=EMAIL_PURPOSE, runs=20):
    """Median milliseconds of the consent filter's queries over every customer (as an
    administrator sees the list), and PostgreSQL's plans for them: for docs/benchmarks.md."""
    import statistics
    import time

    from customers.filters import SORTS

    everyone = Customer.objects.all()
    queries = {
        "count granted": lambda: consenting(everyone, purpose).count(),
        "first page, granted": lambda: len(
            consenting(everyone, purpose).order_by(*SORTS["-created"]).values_list("id")[:50]
        ),
        "count not granted": lambda: not_consenting(everyone, purpose).count(),
        "every id granted (what an export reads)": lambda: len(
            consenting(everyone, purpose).values_list("id", flat=True)
        ),
    }
    figures = {}
    for name, query in queries.items():
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            result = query()
            timings.append((time.perf_counter() - started) * 1000)
        figures[name] = {"median_ms": statistics.median(timings), "result": result}
    figures["customers"] = everyone.count()
    figures["plans"] = {
        "ids granted": consenting(everyone, purpose)
        .order_by()
        .values_list("id")
        .explain(analyze=True),
        "first page, granted": consenting(everyone, purpose)
        .order_by(*SORTS["-created"])
        .values_list("id")[:50]
        .explain(analyze=True),
    }
    return figures
