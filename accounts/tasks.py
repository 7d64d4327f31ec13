import logging

from celery import shared_task
from django.db import DatabaseError

from accounts import audit

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5)
def write_audit_checkpoint(self):
    """Sign the audit trail's head into a checkpoint outside the database (Celery beat).

    Idempotent: a head already signed is left alone. A broken chain is logged as an error and
    not signed; `manage.py verify_audit` says what is wrong.
    """
    try:
        audit.write_checkpoint()
    except DatabaseError as error:
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    except audit.ChainBroken as broken:
        logger.error("Audit trail broken at entry %s: %s", broken.seq, broken.message)
        raise
