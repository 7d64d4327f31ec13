"""Retention rules: records kept no longer than an administrator decided, applied nightly.

Each kind of rule (RetentionRule.Kind) is one or more selections here and an action: customers,
live and archived alike, are erased through customers.erasure (so their figures stay and the
erasure is in the ledger), old form submissions lose their free-text answers and sender
address. `apply_rules(dry_run=True)` says what a run would touch without touching it
(`manage.py apply_retention --dry-run`).
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
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


def archived_unverified_leads(cutoff):
    """The same leads among archived customers: their history is in the archive tables, their
    submissions are found by the ids kept in `related`."""
    from customers.models import ArchivedCustomer, ArchivedInteraction, ArchivedOrder, Status
    from intake.models import Submission

    verified = RawSQL(
        f"EXISTS (SELECT 1 FROM {Submission._meta.db_table} s WHERE s.verified_at IS NOT NULL"
        " AND s.id = ANY(ARRAY(SELECT jsonb_array_elements_text("
        f"{ArchivedCustomer._meta.db_table}.related -> 'submissions'))::uuid[]))",
        [],
        output_field=BooleanField(),
    )
    leads = (
        ArchivedCustomer.objects.filter(
            status=Status.LEAD, created_at__lt=cutoff, updated_at__lt=cutoff
        )
        .alias(verified=verified)
        .exclude(verified=True)
        .exclude(
            Exists(ArchivedOrder.objects.filter(customer_id=OuterRef("pk")))
            | Exists(ArchivedInteraction.objects.filter(customer_id=OuterRef("pk")))
        )
    )
    return _not_erased(leads)


def archived_inactive_churned(cutoff):
    """The same churned customers among archived ones, by their archived history."""
    from customers.models import ArchivedCustomer, ArchivedInteraction, ArchivedOrder, Status

    churned = ArchivedCustomer.objects.filter(status=Status.CHURNED, updated_at__lt=cutoff).exclude(
        Exists(ArchivedOrder.objects.filter(customer_id=OuterRef("pk"), ordered_at__gte=cutoff))
        | Exists(
            ArchivedInteraction.objects.filter(customer_id=OuterRef("pk"), occurred_at__gte=cutoff)
        )
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


# Each kind: its selections and the action on the ids they select. Customer rules select live
# and archived customers alike: archiving must not keep anyone beyond their retention.
KINDS = {
    RetentionRule.Kind.UNVERIFIED_LEADS: ((unverified_leads, archived_unverified_leads), _erase),
    RetentionRule.Kind.INACTIVE_CHURNED: ((inactive_churned, archived_inactive_churned), _erase),
    RetentionRule.Kind.OLD_SUBMISSIONS: ((old_submissions,), _strip_submissions),
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
        selections, act = KINDS[rule.kind]
        cutoff = now - datetime.timedelta(days=rule.days)
        matching = [select(cutoff).order_by("pk") for select in selections]
        ids = []
        for selected in matching:
            wanted = max(limit, REPORT_IDS) - len(ids)
            ids += selected.values_list("pk", flat=True)[:wanted] if wanted > 0 else []
        count = sum(selected.count() for selected in matching)
        result = RuleResult(rule=rule, matching=count, ids=ids[:REPORT_IDS])
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
