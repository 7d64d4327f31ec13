"""Retention rules: what they select, the dry run, the nightly task through a real worker."""

import datetime
import decimal
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditEntry
from customers import retention
from customers.erasure import ERASED_NAME
from customers.models import Customer, Erasure, Interaction, Order, RetentionRule
from intake.models import Form, Submission

LONG_AGO = timezone.now() - datetime.timedelta(days=3 * 365)


@pytest.fixture(autouse=True)
def _ledger_in_a_temporary_file(settings, tmp_path):
    settings.ERASURE_LEDGER_PATH = tmp_path / "ledger.jsonl"


def rule(kind, *, days=730, enabled=True):
    found, _created = RetentionRule.objects.update_or_create(
        kind=kind, defaults={"days": days, "enabled": enabled}
    )
    return found


def old_customer(name, **fields):
    customer = Customer.objects.create(display_name=name, **fields)
    Customer.objects.filter(pk=customer.pk).update(created_at=LONG_AGO, updated_at=LONG_AGO)
    return customer


@pytest.fixture
def leads(db):
    """An old lead nobody ever dealt with, and old leads each kept by one sign of life."""
    form = Form.objects.create(slug="enquiry", title="Enquiry")
    forgotten = old_customer("无人问津", status="lead")
    bought = old_customer("买过", status="lead")
    Order.objects.create(customer=bought, external_id="o1", amount=decimal.Decimal(10))
    called = old_customer("联系过", status="lead")
    Interaction.objects.create(customer=called, kind="call", summary="电话", occurred_at=LONG_AGO)
    verified = old_customer("验证过", status="lead")
    Submission.objects.create(form=form, customer=verified, verified_at=LONG_AGO)
    recent = Customer.objects.create(display_name="新线索", status="lead")
    active = old_customer("老客户", status="active")
    return {
        "forgotten": forgotten,
        "kept": [bought, called, verified, recent, active],
    }


def test_unverified_leads_rule_selects_only_leads_without_any_sign_of_life(leads):
    cutoff = timezone.now() - datetime.timedelta(days=730)

    assert list(retention.unverified_leads(cutoff)) == [leads["forgotten"]]


def test_inactive_churned_rule_spares_customers_with_recent_orders(db):
    gone = old_customer("流失", status="churned")
    returning = old_customer("回头客", status="churned")
    Order.objects.create(customer=returning, external_id="o2", amount=decimal.Decimal(5))
    cutoff = timezone.now() - datetime.timedelta(days=365)

    assert list(retention.inactive_churned(cutoff)) == [gone]


def test_dry_run_reports_and_changes_nothing(leads, capsys, english):
    rule(RetentionRule.Kind.UNVERIFIED_LEADS, enabled=False)
    entries = AuditEntry.objects.count()

    call_command("apply_retention", "--dry-run")

    output = capsys.readouterr().out
    assert "unverified_leads" in output and "disabled" in output and "1 matching" in output
    assert str(leads["forgotten"].pk) in output
    assert not Erasure.objects.exists()
    assert Customer.objects.get(pk=leads["forgotten"].pk).display_name == "无人问津"
    assert AuditEntry.objects.count() == entries
    assert RetentionRule.objects.get(kind="unverified_leads").last_run_at is None


def test_disabled_rules_are_not_applied(leads):
    rule(RetentionRule.Kind.UNVERIFIED_LEADS, enabled=False)

    call_command("apply_retention")

    assert not Erasure.objects.exists()


def test_applying_a_rule_erases_through_the_erasure_code_and_is_audited(leads):
    rule(RetentionRule.Kind.UNVERIFIED_LEADS)

    call_command("apply_retention", "--rule", "unverified_leads")

    erased = Erasure.objects.get()
    assert (erased.customer_id, erased.reason, erased.rule) == (
        leads["forgotten"].pk,
        "retention",
        "unverified_leads",
    )
    assert Customer.objects.get(pk=leads["forgotten"].pk).display_name == ERASED_NAME
    assert all(Customer.objects.get(pk=c.pk).display_name != ERASED_NAME for c in leads["kept"])
    applied = AuditEntry.objects.get(action="retention.apply")
    assert applied.data == {"kind": "unverified_leads", "days": 730, "matching": 1, "changed": 1}
    assert RetentionRule.objects.get(kind="unverified_leads").last_count == 1
    # Erased customers are not selected again.
    assert retention.apply_rules(kinds=["unverified_leads"])[0].matching == 0


def test_old_submissions_lose_free_text_and_address_but_keep_structured_answers(db):
    rule(RetentionRule.Kind.OLD_SUBMISSIONS, days=365)
    form = Form.objects.create(slug="survey", title="Survey")
    old = Submission.objects.create(
        form=form,
        state=Submission.State.DONE,
        answers={"rating": 4},
        private_answers={"comment": "太慢了"},
        ip_address="198.51.100.4",
        created_at=LONG_AGO,
    )
    recent = Submission.objects.create(
        form=form, state=Submission.State.DONE, private_answers={"comment": "很好"}
    )

    retention.apply_rules()

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.answers, old.private_answers, old.ip_address) == ({"rating": 4}, {}, None)
    assert recent.private_answers == {"comment": "很好"}


def test_batch_limit_leaves_the_rest_for_the_next_night(db):
    rule(RetentionRule.Kind.INACTIVE_CHURNED, days=365)
    for n in range(3):
        old_customer(f"流失{n}", status="churned")

    (first,) = retention.apply_rules(limit=2)
    (second,) = retention.apply_rules(limit=2)

    assert (first.matching, first.changed, second.matching, second.changed) == (3, 2, 1, 1)


def test_nightly_task_applies_the_rules_in_a_real_worker(celery_worker):
    from customers.retention_tasks import apply_retention_rules

    rule(RetentionRule.Kind.INACTIVE_CHURNED, days=365)
    gone = old_customer("流失客户", status="churned")

    apply_retention_rules.delay()

    deadline = time.monotonic() + 20
    while not Erasure.objects.filter(customer_id=gone.pk).exists():
        assert time.monotonic() < deadline, "the worker did not apply the rule"
        time.sleep(0.1)
    assert Customer.objects.get(pk=gone.pk).display_name == ERASED_NAME


def test_the_beat_schedule_runs_the_task_nightly(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["apply-retention-rules"]

    assert entry["task"] == "customers.retention_tasks.apply_retention_rules"


def test_admin_dry_run_action_counts_and_changes_nothing(admin_client, leads, english):
    from django.urls import reverse

    found = rule(RetentionRule.Kind.UNVERIFIED_LEADS, enabled=False)

    response = admin_client.post(
        reverse("admin:customers_retentionrule_changelist"),
        {"action": "dry_run", "_selected_action": [found.pk]},
        follow=True,
    )

    assert "1 record would be affected" in response.content.decode()
    assert not Erasure.objects.exists()


def test_admin_refuses_a_rule_shorter_than_a_month(admin_client, db):
    from django.urls import reverse

    found = rule(RetentionRule.Kind.INACTIVE_CHURNED, days=400)

    response = admin_client.post(
        reverse("admin:customers_retentionrule_change", args=[found.pk]),
        {"kind": found.kind, "enabled": "on", "days": "7"},
    )

    assert response.status_code == 200
    found.refresh_from_db()
    assert found.days == 400


def test_customer_rules_select_archived_customers_by_their_archived_history(leads):
    from customers import archiving
    from customers.models import ArchivedCustomer

    archiving.archive_customers([leads["forgotten"].pk, *(c.pk for c in leads["kept"])])
    gone = old_customer("流失已久", status="churned")
    archiving.archive_customers([gone.pk])
    cutoff = timezone.now() - datetime.timedelta(days=730)

    assert list(retention.archived_unverified_leads(cutoff)) == [
        ArchivedCustomer.objects.get(pk=leads["forgotten"].pk)
    ]
    assert [c.pk for c in retention.archived_inactive_churned(cutoff)] == [gone.pk]

    rule("unverified_leads")
    rule("inactive_churned")
    results = {r.rule.kind: r for r in retention.apply_rules()}

    assert results["unverified_leads"].changed == results["inactive_churned"].changed == 1
    erased = ArchivedCustomer.objects.filter(display_name=ERASED_NAME)
    assert set(erased.values_list("pk", flat=True)) == {leads["forgotten"].pk, gone.pk}
    assert Erasure.objects.get(customer_id=gone.pk).rule == "inactive_churned"
    # Erased, they stay in the archive: nothing came back to the live list.
    assert not Customer.objects.filter(pk__in=[leads["forgotten"].pk, gone.pk]).exists()
    assert {r.matching for r in retention.apply_rules(dry_run=True)} == {0}
