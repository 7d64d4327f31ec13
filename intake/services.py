"""Receiving submissions and applying them to customers, where forms and customers meet."""

from django.db import transaction
from django.utils import timezone

from intake.models import Submission


def receive_submission(
    answer_form,
    *,
    channel,
    event="",
    entered_by=None,
    client_key=None,
    ip_address=None,
    language="",
):
    """Store a valid AnswerForm's answers as a submission and start what comes next.

    A form that asks for verification holds the submission as pending (touching no customer)
    and sends the code; otherwise, or when staff typed it in on the customer's behalf, it is
    processed by a worker once the transaction commits. With a `client_key` already stored,
    the earlier submission is returned and nothing is stored twice.
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
