from celery import shared_task
from django.db import DatabaseError

from intake import services
from intake.models import Submission


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
