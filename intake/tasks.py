import datetime

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from intake import services, verification
from intake.models import Submission, VerificationCode


@shared_task(bind=True, max_retries=5)
def process_submission(self, submission_id):
    """Apply a received submission to its customer; a rerun of a processed one does nothing."""
    submission = Submission.objects.filter(
        pk=submission_id, state=Submission.State.RECEIVED
    ).first()
    if submission is None:
        return
    try:
        services.apply_submission(submission)
    except DatabaseError as error:
        # The submission stays received (nothing is lost) and is tried again.
        raise self.retry(exc=error, countdown=2**self.request.retries) from error


@shared_task(bind=True, max_retries=None)
def send_verification_code(self, submission_id):
    """Try again to send a code the provider refused; backs off, then leaves it to the customer.

    Each try sends a fresh code. Nothing is sent once a code went out another way (the customer
    asked again) or the submission is no longer pending.
    """
    if verification.deliver(submission_id, automatic=True) is not False:
        return
    retries = self.request.retries
    if retries + 1 >= settings.INTAKE_VERIFY_RETRIES:
        return
    countdown = verification.retry_delay(retries + 1)
    VerificationCode.objects.filter(
        pk=submission_id, submission__state=Submission.State.PENDING
    ).exclude(last_error="").update(retry_at=timezone.now() + datetime.timedelta(seconds=countdown))
    raise self.retry(countdown=countdown)


@shared_task
def purge_pending_submissions(days=None):
    """Delete submissions never verified; see the purge_pending_submissions command."""
    return services.purge_pending_submissions(days=days)


@shared_task
def requeue_received_submissions():
    """Queue again the received submissions no worker has processed for a while.

    A submission is queued when its transaction commits; a message lost on the way (the broker
    was down, a worker died past the retry limit) would leave it received for ever.
    """
    return services.requeue_received_submissions()
