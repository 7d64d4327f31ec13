"""Receiving submissions and applying them to customers, where forms and customers meet."""

import datetime
import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import audit, permissions
from accounts.models import Team
from customers.models import (
    Channel,
    Consent,
    ConsentPurpose,
    Customer,
    CustomField,
    Gender,
    Interaction,
    InteractionKind,
    Source,
)
from customers.phones import format_phone, normalize_phone
from customers.search import normalize_email
from intake.models import Form, FormField, ProposedChange, Submission


def receive_submission(
    answer_form,
    *,
    channel,
    event="",
    entered_by=None,
    client_key=None,
    ip_address=None,
    language="",
    customer=None,
):
    """Store a valid AnswerForm's answers as a submission and start what comes next.

    A form that asks for verification holds the submission as pending (touching no customer)
    and sends the code; otherwise, or when staff typed it in on the customer's behalf, it is
    processed by a worker once the transaction commits. With a `client_key` already stored,
    the earlier submission is returned and nothing is stored twice. A `customer` given (staff
    filling a form on that customer's behalf) is the one the submission is applied to.
    """
    form = answer_form.built_form
    if client_key is not None:
        existing = Submission.objects.filter(client_key=client_key).first()
        if existing is not None:
            return existing
    readable, private = answer_form.answers()
    pending = bool(form.verify) and entered_by is None
    submission = Submission.objects.create(
        form=form,
        state=Submission.State.PENDING if pending else Submission.State.RECEIVED,
        answers=readable,
        private_answers=private,
        channel=channel,
        event=event,
        entered_by=entered_by,
        client_key=client_key,
        ip_address=ip_address,
        language=language[:10],
        customer=customer,
    )
    if pending:
        from intake import verification

        verification.send_code(submission)
    else:
        queue_processing(submission)
    return submission


def queue_processing(submission):
    from intake.tasks import process_submission

    transaction.on_commit(lambda: process_submission.delay(str(submission.pk)))


def mark_verified(submission):
    """A pending submission's code was confirmed: process it."""
    updated = Submission.objects.filter(pk=submission.pk, state=Submission.State.PENDING).update(
        state=Submission.State.RECEIVED, verified_at=timezone.now()
    )
    if updated:
        queue_processing(submission)
    return bool(updated)


# Applying a submission to a customer -------------------------------------------------------


@dataclass
class SubmittedValues:
    """What a submission says about its customer, read through its form's field targets."""

    customer: dict = dataclass_field(default_factory=dict)  # Customer field -> Python value
    attributes: dict = dataclass_field(default_factory=dict)  # custom field key -> JSON value
    consents: list = dataclass_field(default_factory=list)  # (FormField, purpose, granted)

    @property
    def identifies(self):
        """Whether there is enough to make a customer of: a name, an email or a phone."""
        names = ("display_name", "family_name", "given_name", "email", "phone")
        return any(self.customer.get(name) for name in names)


def submitted_values(submission):
    """The submission's answers that go to the customer, cleaned; invalid ones are left out."""
    values = SubmittedValues()
    definitions = None
    for field in submission.form.fields.all():
        answer = submission.answer(field.key)
        kind, name = field.target_kind, field.target_name
        if kind == FormField.CUSTOMER and name in FormField.CUSTOMER_TARGETS:
            value = customer_value(name, answer)
            if value not in (None, ""):
                values.customer[name] = value
        elif kind == FormField.ATTRIBUTE:
            if definitions is None:
                definitions = {f.key: f for f in CustomField.objects.filter(active=True)}
            value = attribute_value(definitions.get(name), answer)
            if value is not None:
                values.attributes[name] = value
        elif kind == FormField.CONSENT and name in ConsentPurpose.values and answer is not None:
            values.consents.append((field, name, bool(answer)))
    return values


def customer_value(name, value):
    """A submitted (JSON) value as the Customer field `name` stores it, or None if unusable."""
    if value in (None, "", []):
        return None
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    if name == "email":
        email = normalize_email(str(value))
        try:
            validate_email(email)
        except ValidationError:
            return None
        return email
    if name == "phone":
        return normalize_phone(str(value))
    if name == "birthday":
        try:
            return datetime.date.fromisoformat(str(value))
        except ValueError:
            return None
    if name == "gender":
        return value if value in Gender.values else None
    text = str(value).replace("\x00", "").strip()
    return text[: Customer._meta.get_field(name).max_length] or None


def attribute_value(definition, value):
    """A submitted value for a custom field, or None when unknown, empty or not valid for it."""
    if definition is None or value in (None, "", []):
        return None
    if definition.type == CustomField.Type.MULTI_CHOICE and isinstance(value, list):
        value = sorted(value)
    elif definition.type == CustomField.Type.TEXT and not isinstance(value, str):
        value = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    try:
        definition.validate_json(value)
    except ValidationError:
        return None
    return value


def _empty(value):
    return value in (None, "", [])


def apply_submission(submission):
    """Apply a received submission to its customer, found or created; returns the submission.

    Empty fields on record are filled, differing values wait for review as ProposedChanges,
    consents and a timeline entry are recorded; from a sender who does not speak for a customer
    found on record (see speaks_for), every change waits for review and only withdrawals of
    consent are recorded. Runs in one transaction with the submission's row locked, and does
    nothing to a submission that is no longer received, so running it twice (a retried or
    duplicated task) changes nothing the second time.
    """
    with transaction.atomic():
        submission = (
            Submission.objects.select_for_update(of=("self",))
            .select_related("form", "entered_by")
            .filter(pk=submission.pk, state=Submission.State.RECEIVED)
            .first()
        )
        if submission is None:
            return None
        values = submitted_values(submission)
        customer, changes, trusted = _apply_to_customer(submission, values)
        if customer is not None:
            _record_consents(submission, customer, values.consents, trusted=trusted)
            Interaction.objects.create(
                customer=customer,
                kind=InteractionKind.FORM,
                channel=submission.channel,
                occurred_at=submission.created_at,
                summary=submission.form.title[:500],
                details={
                    "submission": str(submission.pk),
                    "form": submission.form.slug,
                    "event": submission.event,
                },
                created_by=submission.entered_by,
            )
        submission.customer = customer
        submission.processed_at = timezone.now()
        submission.state = Submission.State.REVIEW if changes else Submission.State.DONE
        submission.save(update_fields=["customer", "processed_at", "state"])
        return submission


def new_customer_source(submission):
    return {Channel.STORE: Source.STORE, Channel.EXPO: Source.EXPO}.get(
        submission.channel, submission.form.source
    )


def _apply_to_customer(submission, values):
    """(customer, proposed changes, trusted) for a submission: the given, matched or created
    customer, and whether the submission speaks for it.

    Two submissions may create a customer with the same email or phone at the same time; the
    second to commit hits the unique index, and is applied as a match to the first one's.
    """
    if submission.customer_id is not None:
        # Chosen by staff who could change the customer when they typed the answers in.
        customer = Customer.objects.select_for_update().filter(pk=submission.customer_id).first()
        if customer is not None:
            return customer, _update_customer(submission, customer, values, trusted=True), True
    if not values.identifies:
        # An anonymous survey: the answers are kept, no customer is made of them.
        return None, [], False
    for _attempt in range(3):
        customer = _matching_customer(submission, values)
        if customer is not None:
            trusted = speaks_for(submission, customer)
            return (
                customer,
                _update_customer(submission, customer, values, trusted=trusted),
                trusted,
            )
        try:
            with transaction.atomic():
                return _create_customer(submission, values), [], True
        except IntegrityError:
            continue
    raise IntegrityError("A customer with this email or phone keeps appearing and vanishing.")


def speaks_for(submission, customer):
    """Whether a submission may change a customer found by its email or phone without review.

    Anyone can type a known customer's email or mobile number into a public form, so a visitor
    speaks for a customer only after proving one of the contacts the customer has on record
    (the form's verification); staff speak for the customers they may change.
    """
    if submission.entered_by_id is not None:
        return permissions.can(submission.entered_by, permissions.CHANGE, customer)
    name = {Form.Verify.EMAIL: "email", Form.Verify.PHONE: "phone"}.get(submission.form.verify)
    if submission.verified_at is None or name is None:
        return False
    from intake import verification

    proven = customer_value(name, verification.destination(submission))
    return proven is not None and customer_value(name, getattr(customer, name)) == proven


def _matching_customer(submission, values):
    """The existing customer with the submitted email or phone, locked; searching all customers.

    When the email and the phone belong to two different customers, the one whose contact was
    verified wins (else the email's); the other contact becomes a conflict to review.
    """
    email, phone = values.customer.get("email"), values.customer.get("phone")
    by_email = Customer.objects.with_email(email).values_list("pk", flat=True).first()
    by_phone = Customer.objects.with_phone(phone).values_list("pk", flat=True).first()
    chosen = by_email or by_phone
    if by_email and by_phone and by_email != by_phone:
        phone_verified = submission.verified_at and submission.form.verify == Form.Verify.PHONE
        chosen = by_phone if phone_verified else by_email
    if chosen is None:
        return None
    return Customer.objects.select_for_update().filter(pk=chosen).first()


def _create_customer(submission, values):
    form, entered_by = submission.form, submission.entered_by
    fields = dict(values.customer)
    name = fields.pop("display_name", "") or Customer.name_from_parts(
        fields.get("family_name", ""), fields.get("given_name", "")
    )
    team = form.team
    if team is None and entered_by is not None:
        team = Team.objects.filter(group__user=entered_by).order_by("name", "pk").first()
    customer = Customer(
        display_name=(name or fields.get("email") or format_phone(fields.get("phone")))[:200],
        source=new_customer_source(submission),
        owner=entered_by or form.owner,
        team=team,
        attributes=dict(values.attributes),
        created_by=entered_by,
        **fields,
    )
    customer.save()
    audit.record(
        audit.Action.CUSTOMER_CREATE,
        target=customer,
        actor=None,
        data={
            "changes": audit.changes({}, _snapshot(customer, fields, values.attributes)),
            "form": form.slug,
            "submission": str(submission.pk),
        },
    )
    return customer


def _snapshot(customer, names, attribute_keys):
    values = {name: getattr(customer, name) for name in names}
    for key in attribute_keys:
        values[f"attributes.{key}"] = customer.attributes.get(key)
    return values


def _update_customer(submission, customer, values, *, trusted):
    """Fill what is empty on record and propose what differs; returns the proposed changes.

    Unless the submission is `trusted` to speak for the customer, nothing is written: what is
    empty on record is proposed too.
    """
    before = _snapshot(customer, values.customer, values.attributes)
    now = timezone.now()
    open_changes = {
        (change.field, change.proposed_value)
        for change in ProposedChange.objects.filter(customer=customer, decision="")
    }
    proposals = []

    def propose(field, current, proposed, conflicting=None):
        proposed_json = to_json_text(proposed)
        if (field, proposed_json) in open_changes:
            return  # the same value already waits for review
        proposals.append(
            ProposedChange(
                submission=submission,
                customer=customer,
                field=field,
                current_value=to_json_text(current),
                proposed_value=proposed_json,
                conflicting_customer=conflicting,
                created_at=now,
            )
        )

    for name, value in values.customer.items():
        current = getattr(customer, name)
        if name == "notes" and current:
            # Notes gather: a new note is added below the ones on record, never replaces them.
            if value in current:
                continue
            value = f"{current}\n\n{value}"
        if current == value:
            continue
        holder = _other_holder(customer, name, value)
        if holder is not None:
            propose(name, current, value, conflicting=holder)
        elif trusted and (_empty(current) or name == "notes"):
            setattr(customer, name, value)
        else:
            propose(name, current, value)
    attributes = dict(customer.attributes)
    for key, value in values.attributes.items():
        current = attributes.get(key)
        if current == value:
            continue
        if trusted and _empty(current):
            attributes[key] = value
        else:
            propose(f"attribute:{key}", current, value)
    customer.attributes = attributes

    changes = audit.changes(before, _snapshot(customer, values.customer, values.attributes))
    if changes:
        customer.version += 1
        customer.updated_at = now
        customer.updated_by = None
        customer.save()
        audit.record(
            audit.Action.CUSTOMER_UPDATE,
            target=customer,
            actor=None,
            data={
                "changes": changes,
                "form": submission.form.slug,
                "submission": str(submission.pk),
            },
        )
    ProposedChange.objects.bulk_create(proposals)
    return proposals


def _other_holder(customer, name, value):
    """Another customer who already has this email or phone, which must stay unique."""
    lookup = {"email": Customer.objects.with_email, "phone": Customer.objects.with_phone}
    if name not in lookup:
        return None
    return lookup[name](value).exclude(pk=customer.pk).first()


def _record_consents(submission, customer, consents, *, trusted):
    if not trusted:
        # A withdrawal is honoured whoever sends it, as an unsubscribe link is; a grant must
        # come from the customer. It stays in the submission's answers.
        consents = [consent for consent in consents if not consent[2]]
    if not consents:
        return
    with translation.override(submission.language or settings.LANGUAGE_CODE):
        records = [
            Consent(
                customer=customer,
                purpose=purpose,
                granted=granted,
                recorded_at=submission.created_at,
                source=new_customer_source(submission),
                # The wording exactly as the customer saw it, in the language they read.
                wording=field.display_label,
                wording_version=str(field.wording_version),
                recorded_by=submission.entered_by,
            )
            for field, purpose, granted in consents
        ]
    Consent.objects.bulk_create(records)


def to_json_text(value):
    if value in (None, ""):
        return ""
    return json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)


def from_json_text(field, text):
    """A ProposedChange's stored value as the customer's field holds it."""
    if not text:
        return "" if not field.startswith("attribute:") else None
    value = json.loads(text)
    if field == "birthday":
        return datetime.date.fromisoformat(value)
    return value


# Housekeeping ------------------------------------------------------------------------------


def purge_pending_submissions(*, days=None, batch_size=1000):
    """Delete submissions still waiting for verification after `days`; returns how many.

    Deleted in batches, so that a large backlog never holds one long transaction.
    """
    days = settings.INTAKE_PENDING_DAYS if days is None else days
    cutoff = timezone.now() - datetime.timedelta(days=days)
    stale = Submission.objects.filter(state=Submission.State.PENDING, created_at__lt=cutoff)
    total = 0
    while ids := list(stale.values_list("pk", flat=True)[:batch_size]):
        _deleted, by_model = stale.filter(pk__in=ids).delete()
        total += by_model.get(Submission._meta.label, 0)
    return total


def requeue_received_submissions(*, minutes=None, limit=1000):
    """Queue again the received submissions older than `minutes`; returns how many."""
    from intake.tasks import process_submission

    minutes = settings.INTAKE_REQUEUE_MINUTES if minutes is None else minutes
    cutoff = timezone.now() - datetime.timedelta(minutes=minutes)
    ids = list(
        Submission.objects.filter(state=Submission.State.RECEIVED, created_at__lt=cutoff)
        .filter(Q(verified_at__isnull=True) | Q(verified_at__lt=cutoff))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        process_submission.delay(str(pk))
    return len(ids)


# Reviewing proposed changes ----------------------------------------------------------------


class ReviewRefused(Exception):
    """A decision that could not be applied; the message says why, for the reviewer."""


def decide(submission, *, accept, user, expected_version, change=None):
    """Accept or reject one open change of a submission, or all of them; returns how many.

    Accepted values are written through the customer with its version check, so a customer
    changed since the reviewer opened the page is not overwritten (ReviewRefused). The
    submission is done when its last change is decided.
    """
    with transaction.atomic():
        changes = ProposedChange.objects.select_for_update().filter(
            submission=submission, decision=""
        )
        if change is not None:
            changes = changes.filter(pk=change.pk)
        changes = list(changes.order_by("created_at", "id"))
        if not changes:
            return 0
        if accept:
            _accept(submission, changes, user=user, expected_version=expected_version)
        else:
            # Which fields were turned down, not the values: those stay in the submission.
            audit.record(
                audit.Action.CHANGES_REJECTED,
                target=changes[0].customer,
                actor=user,
                data={
                    "submission": str(submission.pk),
                    "form": submission.form.slug,
                    "fields": [c.field for c in changes],
                },
            )
        ProposedChange.objects.filter(pk__in=[c.pk for c in changes]).update(
            decision=ProposedChange.Decision.ACCEPTED
            if accept
            else ProposedChange.Decision.REJECTED,
            decided_by=user,
            decided_at=timezone.now(),
        )
        if not ProposedChange.objects.filter(submission=submission, decision="").exists():
            Submission.objects.filter(pk=submission.pk, state=Submission.State.REVIEW).update(
                state=Submission.State.DONE
            )
        return len(changes)


def _accept(submission, changes, *, user, expected_version):
    customer = Customer.objects.get(pk=changes[0].customer_id)
    names = [c.field for c in changes if not c.field.startswith("attribute:")]
    keys = [c.field.partition(":")[2] for c in changes if c.field.startswith("attribute:")]
    before = _snapshot(customer, names, keys)
    attributes = dict(customer.attributes)
    for change in changes:
        value = from_json_text(change.field, change.proposed_value)
        if change.field.startswith("attribute:"):
            attributes[change.field.partition(":")[2]] = value
        else:
            setattr(customer, change.field, value)
    customer.attributes = attributes
    try:
        with transaction.atomic():
            saved = customer.save_if_unchanged(expected_version=expected_version, user=user)
    except IntegrityError:
        raise ReviewRefused(
            _(
                "Another customer has this email or mobile number. Merge the two customers, "
                "or reject the change."
            )
        ) from None
    except ValidationError:
        raise ReviewRefused(_("The submitted value is not valid for this customer.")) from None
    if not saved:
        raise ReviewRefused(
            _(
                "%(customer)s was changed after you opened this page. Look at the values on "
                "record again, then decide."
            )
            % {"customer": customer}
        )
    changed = audit.changes(before, _snapshot(customer, names, keys))
    if changed:
        audit.record(
            audit.Action.CUSTOMER_UPDATE,
            target=customer,
            actor=user,
            data={
                "changes": changed,
                "form": submission.form.slug,
                "submission": str(submission.pk),
            },
        )
