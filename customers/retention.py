"""Retention rules: records kept no longer than an administrator decided, applied nightly.

Each kind of rule (RetentionRule.Kind) is a selection here and an action: customers are erased
through customers.erasure (so their figures stay and the erasure is in the ledger), old form
submissions lose their free-text answers and sender address. `apply_rules(dry_run=True)` says
what a run would touch without touching it (`manage.py apply_retention --dry-run`).
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts import audit
from customers.erasure_models import Erasure, ErasureReason, RetentionRule

# How many ids a report lists per rule; the count covers them all.
REPORT_IDS = 20


def _active_customers(cutoff):
    """Customers with an order or interaction since `cutoff`."""
    from customers.models import Interaction, Order

    return Exists(Order.objects.filter(customer=OuterRef("pk"), ordered_at__gte=cutoff)) | Exists(
        Interaction.objects.filter(customer=OuterRef("pk"), occurred_at__gte=cutoff)
    )


def _not_erased(customers):
    return customers.exclude(Exists(Erasure.objects.filter(customer_id=OuterRef("pk"))))


def unverified_leads(cutoff):
    """Leads created and untouched since before `cutoff` who never bought, were never contacted
    and never verified an email or phone through a form."""
    from customers.models import Customer, Interaction, Order, Status
    from intake.models import Submission

    leads = Customer.objects.filter(
        status=Status.LEAD, created_at__lt=cutoff, updated_at__lt=cutoff
    ).exclude(
        Exists(Order.objects.filter(customer=OuterRef("pk")))
        | Exists(Interaction.objects.filter(customer=OuterRef("pk")))
        | Exists(Submission.objects.filter(customer=OuterRef("pk"), verified_at__isnull=False))
    )
    return _not_erased(leads)


def inactive_churned(cutoff):
    """Churned customers unchanged, without orders and without interactions since `cutoff`."""
    from customers.models import Customer, Status

    churned = Customer.objects.filter(status=Status.CHURNED, updated_at__lt=cutoff).exclude(
        _active_customers(cutoff)
    )
    return _not_erased(churned)


def old_submissions(cutoff):
    """Processed submissions older than `cutoff` still holding free text or an address."""
    from intake.models import Submission

    return Submission.objects.filter(state=Submission.State.DONE, created_at__lt=cutoff).filter(
        Q(private_answers__isnull=False) | Q(ip_address__isnull=False)
    )


def _erase(ids, rule):
    from customers.erasure import erase_customer
    from customers.models import Customer

    erased = 0
    for customer_id in ids:
        # One transaction per customer: a failure (the customer deleted meanwhile) costs one.
        try:
            erase_customer(customer_id, reason=ErasureReason.RETENTION, rule=rule.kind)
        except Customer.DoesNotExist:
            continue
        erased += 1
    return erased


def _strip_submissions(ids, rule):
    from intake.models import Submission

    return Submission.objects.filter(pk__in=ids).update(private_answers=None, ip_address=None)


KINDS = {
    RetentionRule.Kind.UNVERIFIED_LEADS: (unverified_leads, _erase),
    RetentionRule.Kind.INACTIVE_CHURNED: (inactive_churned, _erase),
    RetentionRule.Kind.OLD_SUBMISSIONS: (old_submissions, _strip_submissions),
}


@dataclass
class RuleResult:
    rule: RetentionRule
    matching: int
    ids: list = field(default_factory=list)
    changed: int = 0


def apply_rules(*, dry_run=False, kinds=None, limit=None, now=None):
    """Apply every enabled rule, or only the `kinds` named; a dry run covers disabled ones too.

    Returns a RuleResult per rule: how many records match, the first ids, and (unless
    `dry_run`) how many were changed, at most `limit` (RETENTION_BATCH_LIMIT) per rule.
    """
    now = now or timezone.now()
    limit = settings.RETENTION_BATCH_LIMIT if limit is None else limit
    rules = RetentionRule.objects.all()
    if kinds:
        rules = rules.filter(kind__in=kinds)
    results = []
    for rule in rules:
        if not (dry_run or rule.enabled):
            continue
        select, act = KINDS[rule.kind]
        matching = select(now - datetime.timedelta(days=rule.days)).order_by("pk")
        ids = list(matching.values_list("pk", flat=True)[: max(limit, REPORT_IDS)])
        result = RuleResult(rule=rule, matching=matching.count(), ids=ids[:REPORT_IDS])
        if not dry_run:
            result.changed = act(ids[:limit], rule)
            with transaction.atomic():
                RetentionRule.objects.filter(pk=rule.pk).update(
                    last_run_at=now, last_count=result.changed
                )
                audit.record(
                    audit.Action.RETENTION_APPLY,
                    target=rule,
                    data={
                        "kind": rule.kind,
                        "days": rule.days,
                        "matching": result.matching,
                        "changed": result.changed,
                    },
                )
        results.append(result)
    return results
