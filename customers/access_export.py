"""Everything CIMS holds about one customer, for a request of access or data portability.

Two forms of the same content: JSON (machine-readable, UTF-8, its structure documented in
docs/privacy.md) and a PDF for people. Both are built from `sections(customer)`, a list of
named sections whose rows are read in batches of BATCH_SIZE in key order, so a customer with a
long history is streamed to the JSON response with flat memory. The PDF shows at most
PDF_ROWS_PER_SECTION rows of each section and says how many more the JSON holds.

What is included: the profile with its encrypted values decrypted, custom attributes, current
consents and every consent record, form and survey submissions with their answers and any
submitted changes waiting for or given a decision, interactions and orders (the archived ones
too), the customer's analytics (RFM scores, segment, lifetime value), the imports that created
or changed the customer, merges into or out of them, and the audit entries about them.
Customers merged into this one count as this customer: their audit entries and archived records
are included. Staff IP addresses in the audit trail are other people's data and are left out.
"""

import datetime
import decimal
import itertools
import json
import uuid
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

FORMAT_NAME = "cims.customer-data"
FORMAT_VERSION = 1
BATCH_SIZE = 1000
PDF_ROWS_PER_SECTION = 500

# Columns that are not the customer's data but how CIMS finds it: search keys, blind indexes.
NOT_EXPORTED = {
    "name_pinyin",
    "search_text",
    "search_keys",
    "email_index",
    "phone_index",
    "phone_last4_index",
}


@dataclass
class Section:
    key: str
    title: str
    rows: object  # a callable returning an iterable of dicts
    count: object  # a callable returning the number of rows


def _plain(value):
    """A value as JSON writes it: times in ISO 8601 with their offset, decimals as strings."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _batched(queryset, key="pk"):
    """Every row of `queryset` in `key` order, read BATCH_SIZE at a time (keyset paging)."""
    queryset = queryset.order_by(key)
    last = None
    while True:
        page = queryset if last is None else queryset.filter(**{f"{key}__gt": last})
        batch = list(page[:BATCH_SIZE])
        yield from batch
        if len(batch) < BATCH_SIZE:
            return
        last = batch[-1].pk if key == "pk" else getattr(batch[-1], key)


def _user(user):
    return user.get_username() if user is not None else None


# The sections ------------------------------------------------------------------------------


def profile(customer):
    from customers.models import Customer

    row = {}
    for field in Customer._meta.concrete_fields:
        if field.name in NOT_EXPORTED:
            continue
        if field.is_relation:
            related = getattr(customer, field.name)
            row[field.name] = str(related) if related is not None else None
        else:
            row[field.name] = _plain(getattr(customer, field.attname))
    row["unreadable_fields"] = customer.unreadable_fields()
    return row


def custom_attributes(customer):
    from customers.models import CustomField

    labels = {f.key: f.display_label for f in CustomField.objects.all()}
    return [
        {"key": key, "label": str(labels.get(key, key)), "value": _plain(value)}
        for key, value in sorted(customer.attributes.items())
    ]


def _consent_rows(customer):
    from customers.models import Consent

    records = Consent.objects.filter(customer=customer).select_related("recorded_by")
    for consent in _batched(records):
        yield {
            "id": str(consent.pk),
            "purpose": consent.purpose,
            "purpose_label": str(consent.get_purpose_display()),
            "granted": consent.granted,
            "recorded_at": _plain(consent.recorded_at),
            "source": consent.source,
            "wording": consent.wording,
            "wording_version": consent.wording_version,
            "recorded_by": _user(consent.recorded_by),
        }


def _submission_rows(customer):
    from intake.models import FormField, ProposedChange, Submission

    # The changes each submission proposed for this customer, read with each batch.
    changes = Prefetch(
        "proposed_changes",
        queryset=ProposedChange.objects.filter(customer=customer),
        to_attr="changes_for_customer",
    )
    submissions = (
        Submission.objects.filter(customer=customer)
        .select_related("form")
        .prefetch_related(changes)
    )
    questions = {}
    for submission in _batched(submissions):
        if submission.form_id not in questions:
            questions[submission.form_id] = {
                f.key: f.display_label for f in FormField.objects.filter(form=submission.form_id)
            }
        labels = questions[submission.form_id]
        answers = {**submission.answers, **(submission.private_answers or {})}
        yield {
            "id": str(submission.pk),
            "form": submission.form.display_title,
            "form_kind": submission.form.kind,
            "state": submission.state,
            "submitted_at": _plain(submission.created_at),
            "verified_at": _plain(submission.verified_at),
            "processed_at": _plain(submission.processed_at),
            "channel": submission.channel,
            "event": submission.event,
            "language": submission.language,
            "answers": [
                {"key": key, "question": str(labels.get(key, key)), "answer": _plain(value)}
                for key, value in answers.items()
            ],
            "submitted_changes": [
                {
                    "field": change.field,
                    "on_record": change.current_value,
                    "submitted": change.proposed_value,
                    "decision": change.decision,
                    "decided_at": _plain(change.decided_at),
                }
                for change in submission.changes_for_customer
            ],
        }


def _interaction_row(interaction, archived):
    return {
        "id": str(interaction.pk),
        "kind": interaction.kind,
        "channel": interaction.channel,
        "occurred_at": _plain(interaction.occurred_at),
        "summary": interaction.summary,
        "details": _plain(interaction.details),
        "created_at": _plain(interaction.created_at),
        "archived": archived,
    }


def _interaction_rows(customer, ids):
    from customers.models import ArchivedInteraction, Interaction

    for interaction in _batched(Interaction.objects.filter(customer=customer)):
        yield _interaction_row(interaction, False)
    for interaction in _batched(ArchivedInteraction.objects.filter(customer_id__in=ids)):
        yield _interaction_row(interaction, True)


def _order_row(order, archived):
    return {
        "id": str(order.pk),
        "source_system": order.source_system,
        "order_number": order.external_id,
        "ordered_at": _plain(order.ordered_at),
        "amount": _plain(order.amount),
        "currency": order.currency,
        "channel": order.channel,
        "lines": _plain(order.lines),
        "archived": archived,
    }


def _order_rows(customer, ids):
    from customers.models import ArchivedOrder, Order

    for order in _batched(Order.objects.filter(customer=customer)):
        yield _order_row(order, False)
    for order in _batched(ArchivedOrder.objects.filter(customer_id__in=ids)):
        yield _order_row(order, True)


def _analytics_rows(customer):
    metrics = apps.get_model("reports", "CustomerMetrics").objects.filter(customer=customer)
    for row in metrics:
        yield {
            field.name: _plain(getattr(row, field.attname))
            for field in row._meta.concrete_fields
            if field.name != "customer"
        }


def _import_rows(ids):
    from customers.models import ImportedCustomer

    records = ImportedCustomer.objects.filter(customer_id__in=ids).select_related(
        "customer_import__user"
    )
    for record in _batched(records):
        job = record.customer_import
        yield {
            "import": str(job.pk),
            "file": job.file_name,
            "imported_at": _plain(job.finished_at or job.created_at),
            "imported_by": _user(job.user),
            "row": record.row,
            "created_customer": record.created,
            "earlier_values_kept_for_revert": record.previous is not None,
        }


def _merge_rows(customer):
    from django.db.models import Q

    from customers.models import Merge

    merges = Merge.objects.filter(Q(survivor=customer) | Q(merged_id=customer.pk))
    for merge in _batched(merges.select_related("merged_by", "undone_by")):
        yield {
            "id": str(merge.pk),
            "kept_customer": str(merge.survivor_id),
            "merged_customer": str(merge.merged_id),
            "merged_name": merge.merged_name,
            "merged_at": _plain(merge.created_at),
            "merged_by": _user(merge.merged_by),
            "undone_at": _plain(merge.undone_at),
        }


def _audit_rows(ids):
    from accounts.audit import AuditEntry

    for entry in _batched(AuditEntry.objects.filter(customer_id__in=ids), key="seq"):
        yield {
            "seq": entry.seq,
            "time": _plain(entry.created_at),
            "action": entry.action,
            "action_label": str(entry.get_action_display()),
            "by": entry.actor_username or None,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "object": entry.object_repr,
            "details": entry.data,
        }


def customer_ids(customer):
    """This customer's id and those of the customers merged into it (and not brought back)."""
    from customers.models import Merge

    merged = Merge.objects.filter(survivor=customer, undone_at__isnull=True)
    return [customer.pk, *merged.values_list("merged_id", flat=True)]


def sections(customer):
    """The export's sections after the profile, in order."""
    from accounts.audit import AuditEntry
    from customers.models import (
        ArchivedInteraction,
        ArchivedOrder,
        Consent,
        ImportedCustomer,
        Interaction,
        Merge,
        Order,
    )
    from intake.models import Submission

    ids = customer_ids(customer)
    metrics = apps.get_model("reports", "CustomerMetrics").objects.filter(customer=customer)

    def counting(queryset):
        return queryset.count

    return [
        Section(
            "consents",
            gettext_lazy("Consent records"),
            lambda: _consent_rows(customer),
            counting(Consent.objects.filter(customer=customer)),
        ),
        Section(
            "submissions",
            gettext_lazy("Form and survey submissions"),
            lambda: _submission_rows(customer),
            counting(Submission.objects.filter(customer=customer)),
        ),
        Section(
            "interactions",
            gettext_lazy("Interactions"),
            lambda: _interaction_rows(customer, ids),
            lambda: (
                Interaction.objects.filter(customer=customer).count()
                + ArchivedInteraction.objects.filter(customer_id__in=ids).count()
            ),
        ),
        Section(
            "orders",
            gettext_lazy("Orders"),
            lambda: _order_rows(customer, ids),
            lambda: (
                Order.objects.filter(customer=customer).count()
                + ArchivedOrder.objects.filter(customer_id__in=ids).count()
            ),
        ),
        Section(
            "analytics",
            gettext_lazy("Customer analytics"),
            lambda: _analytics_rows(customer),
            counting(metrics),
        ),
        Section(
            "imports",
            gettext_lazy("Imports that created or changed the record"),
            lambda: _import_rows(ids),
            counting(ImportedCustomer.objects.filter(customer_id__in=ids)),
        ),
        Section(
            "merges",
            gettext_lazy("Merges"),
            lambda: _merge_rows(customer),
            lambda: (
                Merge.objects.filter(survivor=customer).count()
                + Merge.objects.filter(merged_id=customer.pk).count()
            ),
        ),
        Section(
            "audit_entries",
            gettext_lazy("Audit trail entries"),
            lambda: _audit_rows(ids),
            counting(AuditEntry.objects.filter(customer_id__in=ids)),
        ),
    ]


def header(customer, states=None):
    """The document's opening: what it is, the profile and the current consents (`states`,
    consents.overview of the customer, read here unless given)."""
    from customers import consents

    states = consents.overview(customer) if states is None else states
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "generated_at": timezone.now().isoformat(),
        "generated_by": settings.SITE_URL,
        "customer_id": str(customer.pk),
        "profile": profile(customer),
        "custom_attributes": custom_attributes(customer),
        "current_consents": {
            state.purpose: {
                "state": state.state,
                "since": _plain(state.current.recorded_at) if state.current else None,
            }
            for state in states
        },
    }


def counts(customer):
    return {section.key: section.count() for section in sections(customer)}


# JSON --------------------------------------------------------------------------------------


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, indent=None, separators=(",", ": "))


def json_chunks(customer):
    """The JSON document as text chunks, a row at a time: a streaming response's content."""
    head = _dumps(header(customer))
    yield head[:-1]  # the header object, left open for the sections
    for section in sections(customer):
        yield f',\n"{section.key}": ['
        for number, row in enumerate(section.rows()):
            yield ("\n  " if number == 0 else ",\n  ") + _dumps(row)
        yield "\n]"
    yield "\n}\n"


# PDF ---------------------------------------------------------------------------------------


def _shown(value):
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        # Answers, submitted changes, order lines: one line each, "name: value, ...".
        return "\n".join(
            ", ".join(f"{key}: {_shown(item)}" for key, item in entry.items()) for entry in value
        )
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_pdf(customer, fileobj):
    """A readable document of the same content; long sections are cut at
    PDF_ROWS_PER_SECTION rows, with the count of the rest."""
    from django.template.loader import render_to_string
    from weasyprint import HTML

    from customers import consents

    states = consents.overview(customer)
    head = header(customer, states)
    labels = {f.name: str(f.verbose_name) for f in customer._meta.concrete_fields}
    parts = []
    for section in sections(customer):
        rows = list(itertools.islice(section.rows(), PDF_ROWS_PER_SECTION + 1))
        more = section.count() - PDF_ROWS_PER_SECTION if len(rows) > PDF_ROWS_PER_SECTION else 0
        parts.append(
            {
                "title": section.title,
                "rows": [
                    [(key, _shown(value)) for key, value in row.items()]
                    for row in rows[:PDF_ROWS_PER_SECTION]
                ],
                "more": more,
            }
        )
    context = {
        "customer": customer,
        "profile": [
            (labels.get(key, key), _shown(value))
            for key, value in head["profile"].items()
            if key != "unreadable_fields"
        ],
        "attributes": head["custom_attributes"],
        "current_consents": [(state.label, state.state, state.current) for state in states],
        "sections": parts,
        "generated_at": timezone.localtime(),
        "language": translation.get_language(),
    }
    html = render_to_string("customers/pdf/customer_data.html", context)
    HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf(fileobj)
